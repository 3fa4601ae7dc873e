"""The worker's Faust app keeps its files with the stack's, not in whatever directory it was started from."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings, StackSettings
from streams.worker.app import faust_app


def test_faust_s_data_directory_is_under_the_state_dir_one_per_app_id(tmp_path: Path) -> None:
    settings = Settings(app_id="shop-eu", stack=StackSettings(state_dir=tmp_path / "state"))
    app = faust_app(settings)
    assert Path(app.conf.datadir) == tmp_path / "state" / "faust" / "shop-eu"
    assert Path(app.conf.appdir).parent == Path(app.conf.datadir)
    # Faust creates the data directory with a plain mkdir at start: its parent must exist (the worker would not start).
    Path(app.conf.datadir).mkdir()
