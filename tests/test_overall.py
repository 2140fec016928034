"""The overall rule (photocull.cull.overall): faults first, then taste; and the demo shoot ranked by it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from photocull.cull.overall import FAULT_PENALTY, FOCUS_SAYS_FOR, GROUP_DROP, STEP, judge_results, overall_scores
from photocull.model.reasons import FAULTS, faults


def test_taste_decides_among_sound_frames():
    out = overall_scores([5.0, 6.0, 4.0], [(), (), ()])
    assert [o.score for o in out] == [5.0, 6.0, 4.0] and not any(o.faults for o in out)


def test_a_faulted_frame_never_ranks_above_a_sound_frame_of_its_group():
    # frame 1 is shaken but its aesthetic score is the highest of its burst (group 7)
    taste = [5.2, 6.4, 5.0, 6.0]
    out = overall_scores(taste, [(), ("motion blur / camera shake",), (), ()], groups=[7, 7, 7, None])
    assert out[1].score < min(out[0].score, out[2].score)
    assert out[1].score == pytest.approx(5.0 - STEP)
    assert out[1].faults == ("motion blur / camera shake",)
    assert out[3].score == 6.0  # another scene is not touched
    assert out[0].score == 5.2 and out[2].score == 5.0  # sound frames keep their taste score


def test_a_lone_faulted_frame_keeps_only_the_penalty():
    out = overall_scores([6.0, 5.5], [("too dark",), ()], groups=[None, None])
    assert out[0].score == pytest.approx(6.0 - FAULT_PENALTY) and out[0].demoted
    assert out[1].score == 5.5 and not out[1].demoted


def test_technically_weaker_burst_frame_is_a_fault():
    technical = [8.6, 8.6 - GROUP_DROP - 0.05, 8.6 - GROUP_DROP + 0.05, 3.0]
    out = overall_scores([5.0, 5.6, 5.5, 5.9], [(), (), (), ()], technical, groups=[1, 1, 1, None])
    assert not out[0].faults and not out[2].faults
    assert out[1].faults and "burst" in out[1].faults[0] and out[1].score < out[0].score
    assert not out[3].faults  # alone: nothing to compare with (its low technical mean is not a fault by itself)
    # named by the technical family that rose most over the group's best frame
    sev = [np.array([0.1, 0.1]), np.array([0.2, 0.6]), np.array([0.1, 0.1]), None]
    named = overall_scores([5.0, 5.6, 5.5, 5.9], [(), (), (), ()], technical, [1, 1, 1, None], sev, ("blur", "motion"))
    assert named[1].faults[0].startswith("shakier than the best of its burst")


def test_unscored_and_bad_lengths():
    out = overall_scores([None, float("nan"), 5.0], [(), ("too dark",), ()], groups=[1, 1, 1])
    assert out[0].score is None and out[1].score is None and out[2].score == 5.0
    with pytest.raises(ValueError):
        overall_scores([1.0], [(), ()])


def test_faults_only_from_families_measured_reliable():
    fams = ("blur", "motion", "noise", "dark", "bright", "compression", "contrast", "lowres", "colour")
    sev = np.zeros(len(fams))
    sev[fams.index("compression")] = sev[fams.index("noise")] = 0.99  # named in `why`, not demoted
    assert faults(sev, fams) == ()
    sev[fams.index("blur")] = FAULTS["blur"] + 0.01
    assert faults(sev, fams) == ("blurry / out of focus",)
    assert faults(None, fams) == ()


def test_judge_results_modes():
    class R:
        def __init__(self, probs, aesthetic, sev=None):
            self.probs, self.aesthetic, self.severities = probs, aesthetic, sev

    hi, lo = np.eye(10)[7], np.eye(10)[3]  # means 8 and 4
    rs = [R(hi, lo), R(lo, hi)]
    assert [o.score for o in judge_results(rs, (), "overall")] == [4.0, 8.0]  # the aesthetic decides
    assert [o.score for o in judge_results(rs, (), "personal")] == [8.0, 4.0]  # the personal model does
    assert [o.score for o in judge_results(rs, (), "single")] == [8.0, 4.0]    # the one model's mean
    with pytest.raises(ValueError):
        judge_results(rs, (), "blend")


def test_demo_shoot_every_degraded_copy_ranks_below_its_original(tmp_path, capsys):
    """``photocull score`` on the demo shoot (both shipped networks): every blurred, shaken,
    noisy, dark or crushed copy ranks below its clean original; the copies taken in the same
    burst as the original name the fault that demoted them."""
    pytest.importorskip("skimage")
    from photocull.cli import main
    from photocull.training.demo import make_demo

    folder = tmp_path / "demo"
    make_demo(folder)
    assert main(["--home", str(tmp_path / "home"), "score", str(folder), "--format", "json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "overall"
    photos = {Path(p["path"]).name: p for p in doc["photos"]}
    copies = [n for n in photos if re.search(r"_(blurred|shaken|noisy|dark|crushed)\.jpg$", n)]
    assert len(copies) == 15
    for n in copies:
        original = photos[re.sub(r"_[a-z]+\.jpg$", ".jpg", n)]
        assert photos[n]["rank"] > original["rank"], (n, photos[n]["mean"], original["mean"])
        assert photos[n]["aesthetic"] is not None and photos[n]["technical"] is not None
    for n in ("01_astronaut.jpg", "02_coffee.jpg", "03_chelsea.jpg", "04_rocket.jpg", "05_stereo_motorcycle.jpg"):
        assert photos[n]["faults"] == [], (n, photos[n]["faults"])  # clean frames are never demoted
    demoted = [n for n in copies if photos[n]["faults"]]
    assert len(demoted) >= 10  # most copies carry a fault; the rest rank lower on taste alone
    for n in demoted:
        assert photos[n]["mean"] < photos[re.sub(r"_[a-z]+\.jpg$", ".jpg", n)]["mean"]
        # each fault is named, by its own words or by the focus analysis's for the same
        assert all(f in photos[n]["why"] or any(v == f and k in photos[n]["why"] for k, v in FOCUS_SAYS_FOR.items())
                   for f in photos[n]["faults"]), (n, photos[n]["why"], photos[n]["faults"])


def test_export_one_per_burst_keeps_each_bursts_best_frame(tmp_path, capsys):
    """``photocull export --one-per-burst``: of each burst only the frame ranked first (the
    window's top frame) is exported; the blurred and shaken copies taken in the same burst as
    their original stay behind."""
    pytest.importorskip("skimage")
    from photocull.cli import main
    from photocull.training.demo import make_demo

    folder = tmp_path / "demo"
    make_demo(folder)
    home = str(tmp_path / "home")
    assert main(["--home", home, "score", str(folder), "--format", "json", "-q"]) == 0
    ranked = [Path(p["path"]).name for p in json.loads(capsys.readouterr().out)["photos"] if p.get("rank")]
    dest = tmp_path / "out"
    assert main(["--home", home, "export", str(folder), str(dest), "--top-percent", "100", "--one-per-burst",
                 "-q"]) == 0
    got = {p.name for p in dest.glob("*.jpg")}
    assert ranked[0] in got
    # the coffee burst (the dark copy does not look like the others: it is a photo alone): one frame
    assert [n for n in sorted(got) if n.startswith("02_coffee") and "dark" not in n] == ["02_coffee.jpg"]
    assert len([n for n in got if re.match(r"01_astronaut_burst\d", n)]) <= 1
    assert "04_rocket.jpg" in got and "06_hubble_deep_field.jpg" in got  # photos alone are all kept


def test_reason_words_say_each_reason_once_and_prefer_the_focus_analysis():
    """The focus analysis at full resolution names shake and missed focus itself: the model's
    224 px guess at the same is not said beside it ("motion blur / camera shake, camera
    shake" read as two problems); other reasons stay, each once, in order."""
    from types import SimpleNamespace

    from photocull.cull.overall import reason_words

    judged = dict(supports=lambda family: family != "blur")  # as FocusReport.supports
    shake = SimpleNamespace(reason=lambda: "camera shake", **judged)
    soft = SimpleNamespace(reason=lambda: "missed focus / soft at 100 %", **judged)
    sharp = SimpleNamespace(reason=lambda: "", **judged)
    faces = SimpleNamespace(reason=lambda: "1 of 2 people blinking")
    assert reason_words("low resolution / soft, motion blur / camera shake", None, shake,
                        ("motion blur / camera shake", "softer than the best of its burst (T 5.7 vs 8.4)")) == \
        "low resolution / soft, camera shake, softer than the best of its burst (T 5.7 vs 8.4)"
    assert reason_words("blurry / out of focus", faces, soft, ("blurry / out of focus",)) == \
        "1 of 2 people blinking, missed focus / soft at 100 %"
    # without the focus analysis's word, the model's stays
    assert reason_words("motion blur / camera shake", None, sharp, ("motion blur / camera shake",)) == \
        "motion blur / camera shake"
    assert reason_words(None, None, None, ()) == ""


def test_the_models_blurry_yields_to_focus_judged_at_full_resolution(tmp_path):
    """The technical model's 224 px "blurry / out of focus" is neither a reason nor a fault
    when the focus analysis judged the photo at full resolution (issue 5/7: focus is judged
    where it matters): a sharp frame it calls blurry keeps its place; unjudged (a flat or tiny
    frame, or a photo scored before focus existed), the model's word stays.  Its "motion
    blur" stays either way (the focus analysis misses strong shakes on small photos)."""
    from types import SimpleNamespace

    from photocull.analysis.focus import analyse_focus
    from photocull.cull.overall import own_faults, reason_words
    from photocull.model.reasons import explain
    from photocull.model.spec import REASONS

    rng = np.random.default_rng(0)
    sharp = analyse_focus(rng.integers(0, 256, (600, 900, 3), dtype=np.uint8))
    flat = analyse_focus(np.full((600, 900, 3), 128, np.uint8))
    assert sharp.judged and not sharp.is_fault and not flat.judged
    families = ("blur", "motion", "noise")
    sev = np.array([0.95, 0.2, 0.1])  # the model: very blurry
    blurry = REASONS["blur"]
    assert explain(sev, families, evidence=(None, sharp)) == ""
    assert explain(sev, families, evidence=(None, flat)) == blurry
    assert explain(sev, families, evidence=(None, None)) == blurry
    item = SimpleNamespace(severities=sev, exposure=None, focus=sharp)
    assert own_faults(item, families) == ()
    assert own_faults(SimpleNamespace(severities=sev, exposure=None, focus=flat), families) == (blurry,)
    assert own_faults(SimpleNamespace(severities=sev, exposure=None, focus=None), families) == (blurry,)
    shaken = np.array([0.2, 0.95, 0.1])
    assert own_faults(SimpleNamespace(severities=shaken, exposure=None, focus=sharp), families) == (REASONS["motion"],)
    # a reason stored before the rule is not said beside a judged focus
    assert reason_words(blurry + ", noisy", None, sharp, ()) == "noisy"
    assert reason_words(blurry, None, flat, (blurry,)) == blurry
