"""The 'Learn my taste' dialog: rate photos, train, see before/after, save, grid re-sorts."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("PySide6")


def _shoot(folder, n=30, seed=0):
    """Photos whose brightness is the 'taste' the user rates by."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    levels = np.linspace(0.15, 0.95, n)
    rng.shuffle(levels)
    out = []
    for i, lv in enumerate(levels):
        base = rng.uniform(0, 1, (12, 16, 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize((160, 120), Image.Resampling.BICUBIC)
        a = np.asarray(img, dtype=np.float32) * lv
        p = folder / f"t{i:02d}.jpg"
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(p, quality=90)
        out.append((p, lv))
    return out


@pytest.fixture
def win(qtbot, app_paths, tiny_model):
    from photocull.gui.mainwindow import MainWindow

    w = MainWindow(app_paths)
    w.holder.put("default", tiny_model)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


def test_too_few_ratings_disables_training(qtbot, win, tmp_path):
    from photocull.gui.training_dialog import TrainingDialog

    _shoot(tmp_path / "few", n=8)
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        win.open_folder(tmp_path / "few")
    for i in range(5):
        win.grid.setCurrentIndex(win.proxy.index(i, 0))
        win.set_rating(1 + i % 5)
    dlg = TrainingDialog(win)
    qtbot.addWidget(dlg)
    assert not dlg.train_button.isEnabled()
    assert "at least 20" in dlg.intro.text()


def test_learn_my_taste_end_to_end(qtbot, win, tmp_path):
    from photocull.gui.training_dialog import TrainingDialog

    shoot = dict((p.name, lv) for p, lv in _shoot(tmp_path / "taste", n=40))
    with qtbot.waitSignal(win.scoringDone, timeout=180_000):
        win.open_folder(tmp_path / "taste")
    # the user rates by brightness: 1..5 stars
    for it in list(win.model.items):
        stars = 1 + min(4, int(shoot[it.name] * 5.5 - 0.5))
        row = win.proxy.mapFromSource(win.model.index(win.model.row_of(it.path))).row()
        win.grid.setCurrentIndex(win.proxy.index(row, 0))
        win.set_rating(max(1, stars))
    dlg = TrainingDialog(win)
    qtbot.addWidget(dlg)
    assert len(dlg.ratings) == 40
    assert dlg.train_button.isEnabled()
    dlg.start()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120_000)
    assert dlg.result is not None, dlg.metrics.text()
    assert len(dlg.curve.train) > 3 and len(dlg.curve.val) > 3
    assert "held-out" in dlg.metrics.text()
    # the personal model agrees with the user's taste on held-out ratings, and beats the generic one
    assert dlg.result.after["srcc"] > 0.5
    assert dlg.result.after["srcc"] > dlg.result.before["srcc"] + 0.2
    dlg.name.setText("Bright and Airy")
    with qtbot.waitSignal(win.scoringDone, timeout=180_000):
        name = dlg.save_and_use()
    assert name == "bright-and-airy"
    assert win.model_spec == name
    assert win.loaded_model.name == name and win.loaded_model.trained
    assert (win.paths.models_dir / f"{name}.pt").is_file()
    # the grid now sorts by the personal model: brightness order, roughly
    order = [shoot[it.name] for it in win.proxy.visible_items()]
    from scipy.stats import spearmanr

    assert spearmanr(order, range(len(order)))[0] < -0.6
    # saving again under the same name is refused (nothing overwritten)
    assert dlg.save_and_use() is None


def test_training_failure_and_cancel_reset_the_dialog(qtbot, win, monkeypatch):
    import time

    from photocull.gui.training_dialog import TrainingDialog

    def broken(ratings, holder, catalog_path, cancelled=lambda: False):
        yield {"phase": "features", "done": 0, "total": 3}
        raise ValueError("too few ratings")

    monkeypatch.setattr("photocull.gui.training_dialog.personal_job", broken)
    dlg = TrainingDialog(win)
    qtbot.addWidget(dlg)
    dlg.start()
    assert not dlg.train_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.metrics.text() == "Could not train: too few ratings"
    assert dlg.train_button.isEnabled() and dlg.result is None

    def endless(ratings, holder, catalog_path, cancelled=lambda: False):
        i = 0
        while True:
            yield {"phase": "features", "done": i, "total": 10**6}
            i += 1
            time.sleep(0.005)

    monkeypatch.setattr("photocull.gui.training_dialog.personal_job", endless)
    dlg.start()
    qtbot.waitUntil(lambda: dlg.progress.value() > 0, timeout=10_000)
    dlg._cancel()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.metrics.text() == "Cancelled."
    assert dlg.train_button.isEnabled() and dlg.result is None


# -- the verdict: honest, in plain words -----------------------------------------------------------

def _trained(n_val, personal_quality, seed=0):
    """A FineTuneResult as training returns it, on ``n_val`` held-out ratings: the default
    follows the ratings fairly; "yours" follows them closely ("better"), not at all
    ("worse"), or exactly as the default does ("same")."""
    from photocull.training import personal
    from photocull.training.metrics import score_metrics

    rng = np.random.default_rng(seed)
    stars = np.tile([1, 2, 3, 4, 5], n_val // 5 + 1)[:n_val].astype(float)
    default = np.clip(stars + rng.normal(0, 1.2, n_val), 1, 5)
    yours = {"better": np.clip(stars + rng.normal(0, 0.2, n_val), 1, 5),
             "worse": rng.uniform(1, 5, n_val), "same": default}[personal_quality]
    t, b, a = (personal.ratings_to_targets(v) for v in (stars, default, yours))
    return personal.FineTuneResult(None, score_metrics(b, t), score_metrics(a, t), [], 5, 5 * n_val, 4 * n_val,
                                   n_val, 0.1, "base", False, True, val_targets=t, val_before=b, val_after=a)


def _train_with(qtbot, win, monkeypatch, result):
    from photocull.gui.training_dialog import TrainingDialog

    def job(ratings, holder, catalog_path, cancelled=lambda: False):
        yield {"phase": "select", "epoch": 1, "epochs": 2, "train_loss": 0.2, "val_loss": 0.3}
        return result, None

    monkeypatch.setattr("photocull.gui.training_dialog.personal_job", job)
    dlg = TrainingDialog(win)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.start()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.result is result
    return dlg


def test_verdict_better_makes_saving_the_default(qtbot, win, monkeypatch):
    dlg = _train_with(qtbot, win, monkeypatch, _trained(40, "better"))
    assert dlg.taste.outcome == "better"
    assert dlg.verdict.text().startswith("Your model agrees with your 40 held-out ratings better than the default")
    assert dlg.save_button.isEnabled() and dlg.save_button.isDefault() and dlg.save_button.font().bold()
    assert "On 40 held-out ratings" in dlg.metrics.text()
    for label in (dlg.metrics, dlg.verdict):  # the figures explained
        assert all(w in label.toolTip() for w in ("SRCC", "PLCC", "EMD", "held out"))


def test_verdict_worse_says_so_and_does_not_offer_saving_first(qtbot, win, monkeypatch):
    from PySide6.QtCore import Qt

    res = _trained(40, "worse")
    assert res.after["srcc"] < res.before["srcc"]
    dlg = _train_with(qtbot, win, monkeypatch, res)
    assert dlg.taste.outcome == "worse"
    text = dlg.verdict.text()
    assert "agrees with your 40 held-out ratings worse than the default" in text and "not suggested" in text
    # saving stays possible, but is neither the default action nor bold; "yours" is not bold either
    assert dlg.save_button.isEnabled() and not dlg.save_button.isDefault() and not dlg.save_button.autoDefault()
    assert not dlg.save_button.font().bold()
    srcc_row = next(r for r in dlg.metrics.text().split("<tr>") if "SRCC" in r)
    assert srcc_row.index("<b>") < srcc_row.index(format(res.after["srcc"], ".2f"))  # the default's figure is bold
    # Enter does not save, even with the focus on the button
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))  # never modal
    spec = win.model_spec
    dlg.save_button.setFocus()
    qtbot.keyClick(dlg.save_button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)  # (Enter may retrain, never save)
    assert dlg.isVisible() and win.model_spec == spec and not list(win.paths.models_dir.glob("*.pt"))


@pytest.mark.parametrize("n_val, quality, why", [(8, "worse", "8 held-out ratings are too few"),
                                                (8, "better", "8 held-out ratings are too few"),
                                                (40, "same", "could be chance")])
def test_verdict_cannot_tell(qtbot, win, monkeypatch, n_val, quality, why):
    dlg = _train_with(qtbot, win, monkeypatch, _trained(n_val, quality))
    assert dlg.taste.outcome == "unsure"
    text = dlg.verdict.text()
    assert f"your {n_val} held-out ratings" in text and why in text and "not suggested" in text
    assert not dlg.save_button.isDefault() and not dlg.save_button.font().bold()
    # a new run starts without a verdict
    dlg.start()
    assert dlg.verdict.text() == "" and not dlg.save_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
