"""What a reader sees in the figures: axes fitted to the data, every arm visible, legends off the data,
RI at the precision of its CI."""
import matplotlib
import pandas as pd
import pytest

import analysis.figures as figures
from analysis import run_analysis
from analysis.fakerun import make_run


def _ri_table(ri, low, high, phase="ferrite", comparison=("qcbm_vs_bernoulli", "qcbm", "bernoulli"), n=8):
    return pd.DataFrame([{"comparison": comparison[0], "arm_a": comparison[1], "arm_b": comparison[2],
                          "pair_status": "paired", "phase": phase, "n": n, "ri": ri, "ri_ci_low": low,
                          "ri_ci_high": high}])


def _data_fraction(ax, low, high):
    y0, y1 = ax.get_ylim()
    return 100 * (high - low) / (y1 - y0)


def test_tiny_ri_fills_the_axis_and_the_paper_range_is_named_not_drawn():
    # the issue: +0.004 .. +0.17 % were drawn on a 0..100 % axis and lay flat on the zero line
    fig = figures.ri_figure(_ri_table(0.00046, 0.0001, 0.0008), [])
    ax = fig.axes[0]
    y0, y1 = ax.get_ylim()
    assert y0 <= 0 <= y1 and y1 < 0.2                       # percent: the axis ends near the data, 0 kept
    assert _data_fraction(ax, 0.0001, 0.0008) > 0.5          # the error bar spans most of the axis
    texts = [t.get_text() for t in ax.texts]
    assert any("paper's range +22 … +99 %" in t and "above the axes" in t for t in texts), texts
    assert "+0.046 %" in texts
    matplotlib.pyplot.close(fig)


def test_paper_range_overlapping_the_data_is_a_band_without_rescaling():
    fig = figures.ri_figure(_ri_table(0.30, 0.25, 0.35), [])
    ax = fig.axes[0]
    y0, y1 = ax.get_ylim()
    assert y1 < 60                                           # not stretched to the paper's 99 %
    labels = ax.get_legend_handles_labels()[1]
    assert "paper's range +22 … +99 %" in labels
    matplotlib.pyplot.close(fig)


def test_far_from_zero_data_are_not_squashed_to_show_zero():
    fig = figures.ri_figure(_ri_table(0.50, 0.49, 0.51, comparison=("qcbm_vs_product", "qcbm", "product")), [])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > 0 and _data_fraction(ax, 0.49, 0.51) > 0.5
    assert "0 % is below this range" in [t.get_text() for t in ax.texts]
    matplotlib.pyplot.close(fig)


def test_tie_is_an_open_marker_and_a_win_a_filled_one():
    t = pd.concat([_ri_table(0.1, -0.05, 0.2, n=4), _ri_table(0.1, 0.05, 0.2, n=6)])
    fig = figures.ri_figure(t, [])
    ax = fig.axes[0]
    open_x = [float(x) for ln in ax.lines if ln.get_markerfacecolor() == "white" for x in ln.get_xdata()]
    assert open_x == [4.0]
    matplotlib.pyplot.close(fig)


@pytest.fixture(scope="module")
def three_arm_figures(tmp_path_factory):
    """Figures of a three-arm run whose arms differ by < 0.2 %, captured before saving."""
    root = tmp_path_factory.mktemp("figs")
    make_run(root / "run", phases=("ferrite",), ns=(8,), train_sizes=(512,), seeds=tuple(range(6)), epochs=120,
             effect={("ferrite", 8, 512): 0.00046}, product_effect={("ferrite", 8, 512): 0.0017},
             models=("bernoulli", "product", "qcbm"), update_every={"ferrite": 10}, noise=0.001)
    caught = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(figures, "save_figure", lambda fig, stem: caught.setdefault(stem.name, fig) and [])
    out = run_analysis(root / "run", root / "out", resamples=500, progress=False, montage_samples=0)["out"]
    mp.undo()
    yield caught, pd.read_parquet(out / "improvement.parquet"), (out / "report.md").read_text()
    for fig in caught.values():
        matplotlib.pyplot.close(fig)


def test_every_arm_has_its_own_colour_style_and_marker_and_the_top_curve_is_narrowest(three_arm_figures):
    fig = three_arm_figures[0]["mmd_ferrite_n8_t512_u10_qcbm"]
    ax = fig.axes[0]
    curves = {ln.get_label().split(":")[0]: ln for ln in ax.lines if "rolling" in ln.get_label()}
    assert set(curves) == {"Bernoulli", "product", "QCBM"}
    looks = {(ln.get_color(), str(ln.get_linestyle()), ln.get_marker()) for ln in curves.values()}
    assert len(looks) == 3 and len({ln.get_color() for ln in curves.values()}) == 3
    assert len({ln.get_marker() for ln in curves.values()}) == 3
    order = sorted(curves.values(), key=lambda ln: ln.get_zorder())
    widths = [ln.get_linewidth() for ln in order]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3   # lower curves stick out around


def test_legends_lie_outside_the_data_area(three_arm_figures):
    for name, fig in three_arm_figures[0].items():
        fig.canvas.draw()
        for ax in fig.axes:
            leg = ax.get_legend()
            if leg is None:
                continue
            box, area = leg.get_window_extent(), ax.get_window_extent()
            assert box.x0 >= area.x1 - 1 or box.y1 <= area.y0 + 1, name


def test_title_prints_ri_to_the_precision_of_its_ci_and_running_ri_ends_at_the_table_value(three_arm_figures):
    caught, imp, _ = three_arm_figures
    fig = caught["mmd_ferrite_n8_t512_u10_qcbm"]
    title = fig.axes[0].get_title(loc="left")
    from analysis.fmt import fmt_ri_ci

    for _, r in imp[imp["arm_a"] == "qcbm"].iterrows():
        assert fmt_ri_ci(r["ri"], r["ri_ci_low"], r["ri_ci_high"]) in title
    assert "+0.0 %" not in title and "-0.1 %" not in title
    lines = {ln.get_label(): ln for ln in fig.axes[1].lines}
    for _, r in imp[imp["arm_a"] == "qcbm"].iterrows():
        name = f"QCBM vs {'Bernoulli' if r['arm_b'] == 'bernoulli' else 'product'}: running RI"
        assert lines[name].get_ydata()[-1] == pytest.approx(100 * r["ri"], rel=1e-6)


def test_report_table_prints_ri_and_ci_like_the_figures(three_arm_figures):
    _, imp, report = three_arm_figures
    from analysis.fmt import fmt_ci, fmt_ri

    for _, r in imp.iterrows():
        cell = f"| {fmt_ri(r['ri'], r['ri_ci_low'], r['ri_ci_high'])} | {fmt_ci(r['ri_ci_low'], r['ri_ci_high'])}"
        assert cell in report, cell
        # half-widths here are < 0.01 %: at least three decimals, never the old '+0.0 %' / '-0.1 %'
        assert len(fmt_ri(r["ri"], r["ri_ci_low"], r["ri_ci_high"]).split(".")[1].split()[0]) >= 3
