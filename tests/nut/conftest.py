"""The HA harness fixtures of tests/integration, for the NUT tests that run inside hass."""

from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    auto_enable_custom_integrations,
    fake_session,
    mock_client,
)
