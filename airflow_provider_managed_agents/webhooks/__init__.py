"""Managed Agents webhooks into Airflow: a receiver on the api-server that turns signed deliveries
into asset events, exactly once per run or session ending.

- :mod:`.plugin`: the Airflow plugin (entry point ``airflow.plugins``) that mounts the receiver
  on the api-server at :data:`~.plugin.URL_PREFIX`;
- :mod:`.receiver`: the FastAPI app: body limits, signature checks, answers;
- :mod:`.signing`: Standard Webhooks signatures (verified with the ``standardwebhooks`` package,
  signed by the emulator and the watchers' hand-over);
- :mod:`.connection`: the webhook connection (signing secret, the API connection to fetch with);
- :mod:`.announcing`: from a verified event to asset events on the assets of
  :mod:`airflow_provider_managed_agents.assets`;
- :mod:`.records`: the de-duplication tables in Airflow's metadata database.

Kept import-free: the plugin manager imports :mod:`.plugin` in every Airflow component.
"""

# Where the receiver is mounted on the api-server, below [api] base_url's path.
URL_PREFIX = "/managed-agents/webhooks"
EVENTS_PATH = "/events"  # the API's deliveries: register <[api] base_url>/managed-agents/webhooks/events
WATCHER_PATH = "/watcher-runs"  # runs handed over by watchers with delivery="both"
