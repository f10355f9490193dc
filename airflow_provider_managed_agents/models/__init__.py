"""Pydantic models of the Managed Agents API, one module per concept.

Response models (``deployments``, ``runs``, ``events``, ``resources``, ``pages``) are lenient;
request parameters and their limits are in ``params``. Import from the submodules.
"""
