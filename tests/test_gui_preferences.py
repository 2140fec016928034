"""The Preferences dialog: keys, where marks are written (sidecars, inside the file), bursts."""
from __future__ import annotations

from photocull.config import Settings
from photocull.gui.dialogs import PreferencesDialog


def test_preferences_show_the_settings_and_write_back_only_what_changed(qtbot):
    s = Settings(auto_advance=True, embed_xmp=False, pick_as="stars:4", burst_gap_seconds=2.0)
    d = PreferencesDialog(s)
    qtbot.addWidget(d)
    assert d.auto_advance.isChecked() and not d.embed.isChecked()
    assert d.pick_as.currentData() == "stars:4" and not d.pick_as.isEnabled()  # only with embedding
    assert d.similarity.currentData() == "normal" and d.gap.value() == 2.0
    assert d.apply_to(s) == set()  # nothing touched: nothing changed

    d.embed.setChecked(True)
    assert d.pick_as.isEnabled()
    d.pick_as.setCurrentIndex(d.pick_as.findData("label:Green"))
    d.gap.setValue(3.5)
    d.similarity.setCurrentIndex(d.similarity.findData("loose"))
    d.style.setCurrentIndex(d.style.findData("darktable"))
    changed = d.apply_to(s)
    assert changed == {"embed_xmp", "pick_as", "burst_gap_seconds", "burst_similarity", "sidecar_style"}
    assert (s.embed_xmp, s.pick_as, s.burst_gap_seconds, s.burst_similarity, s.sidecar_style) == (
        True, "label:Green", 3.5, "loose", "darktable")


def test_a_hand_written_pick_setting_is_kept(qtbot):
    s = Settings(pick_as="label:Purple", embed_xmp=True)
    d = PreferencesDialog(s)
    qtbot.addWidget(d)
    assert d.pick_as.currentData() == "label:Purple"
    assert d.apply_to(s) == set()


def test_settings_round_trip_the_new_fields(tmp_path):
    s = Settings(burst_similarity="strict", burst_gap_seconds=4.0, embed_xmp=True)
    s.save(tmp_path / "s.json")
    t = Settings.load(tmp_path / "s.json")
    assert (t.burst_similarity, t.burst_gap_seconds, t.embed_xmp) == ("strict", 4.0, True)
