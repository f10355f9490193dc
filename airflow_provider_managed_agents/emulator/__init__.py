"""A stateful local emulator of the Managed Agents API (deployments, runs, sessions), over real HTTP.

Start it::

    python -m airflow_provider_managed_agents.emulator --host 127.0.0.1 --port 8765 [--api-key KEY]
        [--state-file PATH] [--max-jitter SECONDS]

It prints its default world (agent ``agent_demo`` version 1, environment ``env_demo``), then one
line ``listening on http://HOST:PORT``; SIGTERM or SIGINT stops it cleanly. Without ``--api-key``
any non-empty key is accepted (``x-api-key`` or ``Authorization: Bearer``). Point a connection
at it: ``{"conn_type": "managed_agents", "host": "http://127.0.0.1:8765", "password": "KEY"}``.
In tests, use the ``managed_agents_emulator`` pytest fixture (installed with this package) or
:func:`airflow_provider_managed_agents.emulator.server.run_emulator`.

The API (``/v1/deployments...``, ``/v1/deployment_runs...``) validates requests with the
provider's own models and answers in the API's error envelope with a ``request-id`` header.
Choices where the API documents nothing: lists are newest first (created_at, then id); pausing a
paused deployment, unpausing an active one and archiving an archived one answer 200 unchanged;
running or modifying an archived deployment is a 400 ``invalid_request_error``; a manual run of a
deployment whose agent is archived archives the deployment and answers 400; a missing beta header
or ``anthropic-version`` is a 400 ``invalid_request_error``.

Vault, file and memory-store ids the world was never told about are taken to exist (DAGs may
use any); one added through the controls and then archived or deleted makes runs fail.

Every successful run creates a session (``deployment_id`` set, the initial events recorded, status
``idle``) that then plays a script on the emulator's clock: ``session.status_running``, a model
request span with usage, the agent's message, outcome evaluation spans (``needs_revision`` between
iterations, then the scripted result), ``session.usage``, and the scripted ending (an idle stop
reason, or ``session.error`` + ``session.status_terminated``). ``user.interrupt`` ends a running
turn (``end_turn``; an unfinished outcome becomes ``interrupted``); ``user.message`` on an idle
session starts a new turn; archive and delete are refused (400) while it runs; events to an
archived session are refused (409). ``GET /v1/sessions`` filters by deployment, status, agent and
time with both cursors; ``GET .../events`` by ``types[]`` and time, in either ``order``, with
cursors tied to their order; ``GET .../events/stream`` sends server-sent events from the moment it
opens, with ``ping`` heartbeats.

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
``GET /_emulator/state``                              world objects, deployments (incl. archived), runs, now
``POST /_emulator/{kind}`` ``{"id"?, "skills"?}``     add an agent/environment/vault/file/memory store/skill
                                                     (kind: agents, environments, vaults, files,
                                                     memory_stores, skills)
``POST /_emulator/{kind}/{id}/archive``               archive it
``DELETE /_emulator/{kind}/{id}``                     delete it (runs then fail with *_not_found_error)
``POST /_emulator/agents/{id}/versions``              publish a new agent version
``POST /_emulator/organization`` ``{"disabled"}``     disable/enable the organization
``POST /_emulator/workspace`` ``{"archived"}``        archive/unarchive the workspace
``POST /_emulator/rate_limit``                        ``{"sessions_per_minute": N | null}``
``POST /_emulator/deployments/{id}/next_run_error``   ``{"type", "message"?}``: the next run fails so
                                                     (any type string, also unknown ones)
``POST /_emulator/deployments/{id}/fire``             a scheduled fire now -> ``{"run", "deployment"}``
``POST /_emulator/deployments/{id}/seed_runs``        ``{"count"}``: record that many manual runs at once
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
                                                     "refusal_category", "refusal_explanation"}``
                                                     (ending: a stop reason, also an unknown one, or
                                                     ``terminated``)
``POST /_emulator/sessions/next_script``              the same, for the next session of any deployment
``POST /_emulator/sessions/default_script``           the same, for every later session of a deployment
                                                     without a script of its own
``POST /_emulator/faults``                            ``{"rate", "kinds", "endpoints", "retry_after",
                                                     "latency_ms", "count", "seed"}``; kinds: 429, 529,
                                                     500, 503, latency, drop, commit_then_drop;
                                                     endpoints like ``"POST /v1/deployments"`` or ``"*"``
``DELETE /_emulator/faults``                          stop injecting
``GET /_emulator/requests``                           ``{"total", "by_endpoint", "faults"}``
``DELETE /_emulator/requests``                        reset the counters
===================================================  =============================================
"""
