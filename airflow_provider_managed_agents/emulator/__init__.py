"""A stateful local emulator of the Managed Agents API (deployments, runs, sessions; agents,
environments, vaults and credentials, memory stores), over real HTTP.

Start it::

    python -m airflow_provider_managed_agents.emulator --host 127.0.0.1 --port 8765 [--api-key KEY]
        [--state-file PATH] [--max-jitter SECONDS]

It prints its default world (agent ``agent_demo`` "Demo agent" on ``claude-sonnet-4-6`` at version
1, environment ``env_demo``, cloud and unrestricted: records the API answers for), then one
line ``listening on http://HOST:PORT``; SIGTERM or SIGINT stops it cleanly. Without ``--api-key``
any non-empty key is accepted (``x-api-key`` or ``Authorization: Bearer``). Point a connection
at it: ``{"conn_type": "managed_agents", "host": "http://127.0.0.1:8765", "password": "KEY"}``.
In tests, use the ``managed_agents_emulator`` pytest fixture (installed with this package) or
:func:`airflow_provider_managed_agents.emulator.server.run_emulator`.

The API (``/v1/deployments...``, ``/v1/deployment_runs...``, ``/v1/sessions...``,
``/v1/agents...``, ``/v1/environments...``, ``/v1/vaults...`` with
``/v1/vaults/{id}/credentials...``, ``/v1/memory_stores...``) validates requests with the
provider's own models (unknown fields refused; for the provisioning APIs also inside nested
objects) and answers in the API's error envelope with a ``request-id`` header; every answer
validates strictly with the official SDK's models. Choices where the API documents nothing:
lists are newest first (created_at, then id; an agent's versions newest version first); pausing
a paused deployment, unpausing an active one and archiving an archived anything answer 200
unchanged (archive is final); running or modifying an archived deployment is a 400
``invalid_request_error``; a manual run of a deployment whose agent is archived archives the
deployment and answers 400 (no run, so no ``agent_archived_error``); a missing beta header or
``anthropic-version`` is a 400 ``invalid_request_error``; ``/v1/memory_stores...`` take
``agent-memory-2026-07-22`` (the SDK's) or ``managed-agents-2026-04-01``.

Provisioning, as the SDK documents it and as inferred where it does not:

* Agents (``agent_...``): a create is version 1; the answer always spells ``model`` as an object
  (``effort`` resolved, default ``{"type": "high"}``; ``speed`` default ``standard``;
  ``inference_geo`` null), toolsets with every config and a ``default_config`` (``enabled: true``;
  policy ``always_allow`` for the agent toolset, ``always_ask`` for an MCP toolset; a config
  without ``enabled`` or a policy takes the default config's), skills with ``version`` (default
  ``latest``), ``execution_identity`` ``{"type": "service_account"}``, ``multiagent`` null. An
  update keeps what it omits, clears ``system``/``description`` with null or ``""``, replaces
  lists (null clears) and patches ``metadata`` (a null value deletes; ``metadata: null`` as a
  whole changes nothing); a change mints version + 1 and keeps every version
  (``GET /v1/agents/{id}?version=N``, ``GET /v1/agents/{id}/versions``); an update that changes
  nothing mints no version (and leaves ``updated_at``); a body ``version`` that is not the
  current one is a 409 ``conflict_error`` with ``x-should-retry: false``; an archived agent
  cannot be updated (400). Every MCP server must be used by an ``mcp_toolset`` and every toolset
  name one (also after an update). No delete (but the controls).
* Environments (``env_...``): ``config`` is answered complete (cloud: ``networking`` default
  unrestricted, a limited one with all of its fields, ``packages`` with all six lists); omitted,
  it is cloud, unrestricted, no packages. An update merges ``config`` (omitted parts kept,
  ``packages`` per manager, ``networking`` per field while its type stays); another
  ``config.type`` is a 400 ``invalid_config_type_change``; ``metadata`` null or ``""`` deletes a
  key; an archived environment cannot be updated (400 ``environment_archived``); ``scope``
  defaults to ``organization`` (``account`` is refused, as for API organizations). Delete is
  allowed while deployments name it (their runs then fail with ``environment_not_found_error``).
* Vaults (``vlt_...``) and credentials (``vcrd_...``): secrets (``token``, ``secret_value``,
  ``access_token``, ``refresh_token``, ``client_secret``) are never answered nor kept: the state
  holds only the SHA-256 of each (``secret_sha256`` in ``GET /_emulator/state``).
  ``injection_location`` defaults to ``{"header": true, "body": false}`` and one of them must
  stay true; an update's ``auth.type`` must be the stored one, and ``mcp_server_url`` and
  ``secret_name`` cannot change; ``expires_at`` must be in the future; one credential per MCP
  server URL is not enforced. An archived vault takes no new credential and, like an archived
  credential, no update (400); archiving a vault leaves its credentials as they are; deleting it
  deletes them.
* Memory stores (``memstore_...``): ``description`` is ``""`` when unset (null on update clears
  it too); an archived store cannot be updated (400).
* Deployments and runs use these records: a deployment's agent must exist and not be archived,
  a bare agent id pins its latest version, a pinned version must exist; a session snapshots the
  pinned version (name, model, tools...). Runs fail with the typed errors when the environment
  is archived or gone, a vault or memory store is archived or deleted, or a custom skill of the
  agent is unknown or deleted (anthropic skills always exist). Vault, file and memory-store ids
  the world was never told about are taken to exist (DAGs may use any); the agent and the
  environment must exist.

Every successful run creates a session (``deployment_id`` set, the initial events recorded, status
``idle``) that then plays a script on the emulator's clock: ``session.status_running``, a model
request span with usage, the agent's message, outcome evaluation spans (``needs_revision`` between
iterations, then the scripted result), ``session.usage``, and the scripted ending (an idle stop
reason, or ``session.error`` + ``session.status_terminated``). ``user.interrupt`` ends a running
turn (``end_turn``; an unfinished outcome becomes ``interrupted``); ``user.message`` on an idle
session starts a new turn; archive and delete are refused (400) while it runs; events to an
archived session are refused (409). A script's ``actions`` make the agent ask
(:mod:`~airflow_provider_managed_agents.emulator.actions`): rounds of ``agent.tool_use`` /
``agent.mcp_tool_use`` calls held for a confirmation and ``agent.custom_tool_use`` calls, each round
idle with ``requires_action`` naming them; ``user.tool_confirmation`` and
``user.custom_tool_result`` answer them (an answer to anything not pending, or a ``deny_message``
with ``allow``, is a 400 ``invalid_request_error``; answering some re-emits the idle event with the
rest); a denial changes the ending (``when_denied``); ``user.interrupt`` while calls are pending
ends the turn. ``GET /v1/sessions`` filters by deployment, status, agent and
time with both cursors; ``GET .../events`` by ``types[]`` and time, in either ``order``, with
cursors tied to their order; ``GET .../events/stream`` sends server-sent events from the moment it
opens, with ``ping`` heartbeats.

A session's script may write files (``files``: ``[{"filename", "content"}]`` for text or
``[{"filename", "size"}]`` for that many generated bytes, streamed, never held; optional
``mime_type``). They appear when the agent's first message does, and the Files API serves them:
``GET /v1/files?scope_id=<session id>`` (newest first, ``limit`` up to 1,000, cursors),
``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content``; these take any beta header or none,
as the API does. A file's id follows from its session and place; a deleted session's files go
with it (:mod:`~airflow_provider_managed_agents.emulator.files`).

Schedules fire for real on the emulator's clock (wall clock plus an offset you can advance), each
with a fixed per-deployment jitter in ``[0, max_jitter]``, never while paused or archived, without
backfill, at most once per ``(deployment, scheduled_at)``. A failed scheduled fire auto-pauses the
deployment unless the error is ``session_rate_limited_error`` or ``session_creation_rejected_error``.

``GET /console/workspaces/{ws}/deployments/{id}`` (and ``.../sessions/{id}``) is a minimal
stand-in for the Claude Console: set a connection's ``console_url`` extra to
``http://HOST:PORT/console`` and the operators' extra links open a page naming the deployment or
the session, offline.

Control endpoints (JSON, no auth), off the API's path space:

===================================================  =============================================
``POST /_emulator/reset``                             back to the default world; clears faults, counters
``GET /_emulator/state``                              records (agents with ``versions``, vaults with
                                                     ``credentials``, also as ``vault_credentials``,
                                                     no secret), files, skills,
                                                     deleted ids, deployments (incl. archived), runs,
                                                     sessions, now
``POST /_emulator/{kind}`` ``{"id"?, "skills"?}``     add an agent/environment/vault/file/memory store/skill
                                                     (kind: agents, environments, vaults, files,
                                                     memory_stores, skills); agents, environments,
                                                     vaults and memory stores are API records
                                                     (``skills``: custom skill ids of a new agent)
``POST /_emulator/{kind}/{id}/archive``               archive it
``DELETE /_emulator/{kind}/{id}``                     delete it (also an agent; runs then fail with
                                                     *_not_found_error)
``POST /_emulator/agents/{id}/versions``              publish a new agent version (the latest, copied)
``POST /_emulator/organization`` ``{"disabled"}``     disable/enable the organization
``POST /_emulator/workspace`` ``{"archived"}``        archive/unarchive the workspace
``POST /_emulator/rate_limit``                        ``{"sessions_per_minute": N | null}`` (runs fail with
                                                     ``session_rate_limited_error`` beyond it), and the
                                                     organization's request limits ``{"reads_per_minute",
                                                     "writes_per_minute": N | null, "burst"}``: token
                                                     buckets on the emulator's clock (burst default: a
                                                     minute's worth; writes: every method but GET),
                                                     answered 429 with ``retry-after`` / ``retry-after-ms``
``POST /_emulator/deployments/{id}/next_run_error``   ``{"type", "message"?}``: the next run fails so
                                                     (any type string, also unknown ones)
``POST /_emulator/deployments/{id}/fire``             a scheduled fire now -> ``{"run", "deployment"}``
``POST /_emulator/deployments/{id}/seed_runs``        ``{"count", "scripts"?}``: record that many manual runs
                                                     at once (``scripts``: how their sessions play out)
``POST /_emulator/deployments/{id}/jitter``           ``{"seconds"}``: the delay of its scheduled fires
                                                     (0-60; default drawn from its id in
                                                     ``[0, max_jitter]``)
``POST /_emulator/clock``                             ``{"advance_seconds", "freeze"}``: freeze (only jumps
                                                     move it then) and/or move the clock; fires and
                                                     session steps due by then happen before it answers
``POST /_emulator/deployments/{id}/session_script``   how the deployment's later sessions play out:
                                                     ``{"ending", "outcome_result", "iterations",
                                                     "turn_seconds", "start_delay", "final_text",
                                                     "input_tokens", "output_tokens", "error_type",
                                                     "error_message", "rescheduling",
                                                     "refusal_category", "refusal_explanation",
                                                     "files", "actions", "when_denied"}``
                                                     (ending: a stop reason, also an unknown one, or
                                                     ``terminated``; files: what the agent writes,
                                                     ``[{"filename", "content" | "size"}]``;
                                                     actions: rounds of calls the agent waits on,
                                                     each ``{"tool", "input", "mcp_server"?}`` or
                                                     ``{"custom_tool", "input"}``; when_denied:
                                                     ``{"final_text", "outcome_result", "ending"}``
                                                     after a denial)
``POST /_emulator/sessions/next_script``              the same, for the next session of any deployment
``POST /_emulator/sessions/default_script``           the same, for every later session of a deployment
                                                     without a script of its own
``POST /_emulator/faults``                            ``{"rate", "kinds", "endpoints", "retry_after",
                                                     "latency_ms", "count", "seed"}``; kinds: 429, 529,
                                                     500, 503, latency, drop, commit_then_drop;
                                                     endpoints like ``"POST /v1/deployments"`` or ``"*"``
``DELETE /_emulator/faults``                          stop injecting
``GET /_emulator/requests``                           ``{"total", "by_endpoint", "faults", "rate_limited":
                                                     {"reads", "writes"}}`` (429s the limits gave)
``DELETE /_emulator/requests``                        reset the counters
``POST /_emulator/webhooks``                          ``{"url", "events", "retry_delays"?,
                                                     "timeout_seconds"?}``: register a webhook endpoint
                                                     (``events``: types, or ``["*"]``) -> ``{"id",
                                                     "signing_secret", ...}``, the ``whsec_`` secret
                                                     shown this once
``GET /_emulator/webhooks``                           the endpoints (no secrets)
``DELETE /_emulator/webhooks/{id}``                   remove an endpoint
``GET /_emulator/webhooks/deliveries``                every delivery: event, state, attempts (status,
                                                     error, duration)
``POST /_emulator/webhooks/faults``                   ``{"kinds", "rate", "count", "delay_ms", "events",
                                                     "seed"}``; kinds: duplicate, delay, reorder, drop
                                                     (dropped then retried)
``DELETE /_emulator/webhooks/faults``                 deliver normally again
``POST /_emulator/webhooks/emit``                     ``{"type", "id", "data"?}``: deliver any event type
===================================================  =============================================

Webhooks (:mod:`~airflow_provider_managed_agents.emulator.webhooks`): a recorded run emits
``deployment_run.started`` then ``.succeeded`` or ``.failed``; a session ``session.created``, a
``session.status_*`` per status change (``run_started``, ``idled``, ``rescheduled``,
``terminated``) and ``session.outcome_evaluation_ended``; a deployment ``deployment.created``,
``.updated``, ``.paused``, ``.unpaused``, ``.archived``. Each is signed per Standard Webhooks as
the API signs (the SDK's ``beta.webhooks.unwrap()`` accepts it), delivered from the emulator's
own tasks, and retried after ``retry_delays`` (real seconds; default 1, 2, 5, 10, 30, 60, 120,
300) on any answer but 2xx or a timeout. A reset forgets the endpoints; they are not kept in the
state file.
"""
