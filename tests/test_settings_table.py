"""The README's settings table is generated from config.SETTINGS (one source of truth)."""

from __future__ import annotations

from support import REPO_ROOT

from flight_server.config import SETTINGS, settings_table


def test_readme_settings_table_is_generated_from_settings():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [s.flag for s in SETTINGS if f"| `{s.flag}` |" not in readme]
    assert settings_table() in readme, (
        "README's settings table differs from config.SETTINGS (missing: " + ", ".join(missing) + "); regenerate it: "
        "python -c 'from flight_server.config import settings_table; print(settings_table())'")
