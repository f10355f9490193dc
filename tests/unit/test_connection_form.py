"""The connection form the running Airflow's UI gets for a managed_agents connection (its
``/ui/connections/hook_meta`` service): labelled extra fields and relabelled standard fields on
every supported version (declarative ``conn-fields`` from 3.2, the hook's widgets before)."""

from __future__ import annotations

from airflow_provider_managed_agents.get_provider_info import CONN_FIELDS


def test_the_form_has_the_labelled_fields_on_this_airflow() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    forms = {meta.connection_type: meta for meta in HookMetaService.hook_meta_data()}
    form = forms["managed_agents"]
    assert set(form.extra_fields or {}) == set(CONN_FIELDS)
    titles = {name: (field.get("schema") or {}).get("title") for name, field in (form.extra_fields or {}).items()}
    assert titles == {name: spec["label"] for name, spec in CONN_FIELDS.items()}
    standard = form.standard_fields
    assert standard is not None and standard.password is not None and standard.password.title == "API key"
    assert standard.host is not None and standard.host.title == "Base URL"
    assert standard.login is not None and standard.login.hidden is True
