"""Model formats: the demo BPMN says what docs/decisions.md says; the text format compiles to the
same behaviour; annotations and bad input give clear errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from processlens.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "data" / "demo" / "model"

# docs/decisions.md, "The demo world": activity -> owner team, SLA in days.
OWNERS = {
    "Create Order": "Sales", "Check Credit": "Finance", "Approve Order": "Sales", "Reject Order": "Sales",
    "Pick Goods": "Warehouse", "Pack Goods": "Warehouse", "Address Invalid": "Warehouse",
    "Correct Address": "Customer Service", "Ship Goods": "Warehouse", "Create Invoice": "Finance",
    "Payment Failed": "Finance", "Retry Payment": "Finance", "Payment Received": "Finance", "Close Order": "Sales",
}
SLA_DAYS = {"Check Credit": 1, "Approve Order": 2, "Reject Order": 2, "Pick Goods": 2, "Pack Goods": 1, "Ship Goods": 2,
            "Correct Address": 1, "Create Invoice": 1, "Payment Received": 14, "Retry Payment": 2, "Close Order": 2}
HAPPY = ["Create Order", "Check Credit", "Approve Order", "Pick Goods", "Pack Goods", "Ship Goods", "Create Invoice",
         "Payment Received", "Close Order"]
TRACES = [
    HAPPY,
    ["Create Order", "Check Credit", "Reject Order"],
    HAPPY[:5] + ["Address Invalid", "Correct Address"] + HAPPY[5:],
    HAPPY[:7] + ["Payment Failed", "Retry Payment", "Payment Failed", "Retry Payment"] + HAPPY[7:],
    ["Create Order", "Approve Order"] + HAPPY[3:],                    # skipped credit check
    HAPPY[:6] + ["Create Invoice"] + HAPPY[6:],                       # duplicate invoice
    HAPPY[:5] + ["Create Invoice", "Ship Goods"] + HAPPY[7:],         # wrong order
    HAPPY[:5] + ["Address Invalid", "Ship Goods"] + HAPPY[6:],        # unhandled exception
]


@pytest.fixture(scope="module")
def bpmn_model():
    from models import load_model

    return load_model(MODEL_DIR / "order_to_cash.bpmn")


@pytest.fixture(scope="module")
def text_model():
    from models import load_model

    return load_model(MODEL_DIR / "order_to_cash.txt")


def test_demo_bpmn_reads_lanes_timers_and_error_events(bpmn_model) -> None:
    m = bpmn_model
    assert m.labels == set(OWNERS)
    assert {s: m.owner(s) for s in OWNERS} == OWNERS
    assert {s.name: s.sla_seconds / 86400 for s in m.steps.values() if s.sla_seconds} == SLA_DAYS
    assert m.exceptions == {"Address Invalid": "Correct Address", "Payment Failed": "Retry Payment"}
    assert m.final_steps == {"Close Order", "Reject Order"}
    assert m.ignored == {"Open Ticket", "Resolve Ticket"}  # from the annotations beside the model
    assert m.calendar is not None and m.calendar.timezone == "Europe/Berlin"


def _fitness(model, trace):
    from models.conformance import token_replay_variants

    return token_replay_variants(model, [tuple(trace)])[0]


def test_text_format_compiles_to_the_same_model(bpmn_model, text_model) -> None:
    from collections import Counter

    from models.running import enabled_steps, reached_marking

    assert text_model.labels == bpmn_model.labels
    assert {s: text_model.owner(s) for s in OWNERS} == OWNERS
    assert {s.name: s.sla_seconds / 86400 for s in text_model.steps.values() if s.sla_seconds} == SLA_DAYS
    assert text_model.exceptions == bpmn_model.exceptions
    assert text_model.final_steps == bpmn_model.final_steps
    from models.conformance import alignment_variants, classify_moves

    for trace in TRACES:
        a, b = _fitness(bpmn_model, trace), _fitness(text_model, trace)
        assert a["fit"] == b["fit"], trace
        # same behaviour: the same deviations (token counts differ with the net's shape, as in pm4py)
        (al_a,), (al_b,) = alignment_variants(bpmn_model, [tuple(trace)]), alignment_variants(text_model, [tuple(trace)])
        devs_a = [(d["type"], d["step"]) for d in classify_moves(al_a["moves"], bpmn_model)]
        devs_b = [(d["type"], d["step"]) for d in classify_moves(al_b["moves"], text_model)]
        assert sorted(devs_a) == sorted(devs_b), trace
    for trace in TRACES[:4]:
        for i in range(len(trace) + 1):
            ma = reached_marking(bpmn_model, trace[:i]) if i else Counter(bpmn_model.im)
            mb = reached_marking(text_model, trace[:i]) if i else Counter(text_model.im)
            assert set(enabled_steps(bpmn_model.net, ma)) == set(enabled_steps(text_model.net, mb)), trace[:i]


def test_expected_paths_fit_and_deviations_do_not(bpmn_model) -> None:
    assert [_fitness(bpmn_model, t)["fit"] for t in TRACES] == [True] * 4 + [False] * 4


def test_unsupported_bpmn_elements_are_named_with_ids(tmp_path: Path) -> None:
    from models import load_model

    src = (MODEL_DIR / "order_to_cash.bpmn").read_text()
    bad = src.replace('<bpmn:endEvent id="EndEvent_Rejected"',
                      '<bpmn:subProcess id="Sub_Review" name="Review" />\n'
                      '    <bpmn:intermediateCatchEvent id="Wait_1" />\n    <bpmn:endEvent id="EndEvent_Rejected"')
    path = tmp_path / "bad.bpmn"
    path.write_text(bad)
    with pytest.raises(ModelError) as err:
        load_model(path, MODEL_DIR / "order_to_cash.toml")
    msg = str(err.value)
    assert "subProcess id=Sub_Review" in msg and "intermediateCatchEvent id=Wait_1" in msg
    assert err.value.where["line"] > 1 and err.value.hint


def test_two_pools_are_rejected(tmp_path: Path) -> None:
    from models import load_model

    src = (MODEL_DIR / "order_to_cash.bpmn").read_text()
    src = src.replace("</bpmn:process>", '</bpmn:process>\n  <bpmn:process id="Process_Customer" name="Customer">\n'
                      '    <bpmn:task id="Task_Pay" name="Pay" />\n  </bpmn:process>', 1)
    (tmp_path / "two.bpmn").write_text(src)
    with pytest.raises(ModelError, match="Process_Customer") as err:
        load_model(tmp_path / "two.bpmn", MODEL_DIR / "order_to_cash.toml")
    assert err.value.where["element"] == "Process_Customer"


def test_malformed_xml_names_the_line(tmp_path: Path) -> None:
    from models import load_model

    path = tmp_path / "broken.bpmn"
    path.write_text('<?xml version="1.0"?>\n<definitions>\n<process id="p">\n</definitions>\n')
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert err.value.where["line"] == 4


def test_annotations_with_unknown_step_suggest_close_names(tmp_path: Path) -> None:
    from models import load_model

    ann = tmp_path / "a.toml"
    ann.write_text('[steps."Aprove Order"]\nowner = "Sales"\n')
    with pytest.raises(ModelError) as err:
        load_model(MODEL_DIR / "order_to_cash.bpmn", ann)
    assert "Approve Order" in err.value.hint and err.value.where["file"] == str(ann)


def test_annotations_fill_mapping_working_time_and_allowlist(tmp_path: Path) -> None:
    from models import load_model

    ann = tmp_path / "a.toml"
    ann.write_text('[model]\nname = "o2c"\nfinal = ["Close Order"]\n[mapping]\n"Credit check done" = "Check Credit"\n'
                   '[steps."Approve Order"]\nowner = "Key Accounts"\nsla = "1d 4h"\nsla_time = "working"\n'
                   '[[allow]]\ntype = "skipped step"\nstep = "Check Credit"\n')
    m = load_model(MODEL_DIR / "order_to_cash.bpmn", ann)
    assert m.name == "o2c" and m.final_steps == {"Close Order"}
    assert m.task_for("Credit check done") == "Check Credit"
    st = m.steps["Approve Order"]
    assert (st.owner, st.sla_seconds, st.sla_working) == ("Key Accounts", 28 * 3600, True)
    assert m.is_allowed("skipped step", "Check Credit") and not m.is_allowed("skipped step", "Pick Goods")
    ann.write_text('[[allow]]\ntype = "skiped step"\n')
    with pytest.raises(ModelError, match="allowlist entry 1"):
        load_model(MODEL_DIR / "order_to_cash.bpmn", ann)


def test_yaml_annotations(tmp_path: Path) -> None:
    from models import load_model

    (tmp_path / "m.bpmn").write_text((MODEL_DIR / "order_to_cash.bpmn").read_text())
    (tmp_path / "m.yaml").write_text('model:\n  final: [Close Order]\nsteps:\n  Approve Order:\n    owner: Key Accounts\n'
                                     '    sla: 3d\nallow:\n  - type: wrong order\n')
    m = load_model(tmp_path / "m.bpmn")
    assert m.final_steps == {"Close Order"} and m.owner("Approve Order") == "Key Accounts"
    assert m.steps["Approve Order"].sla_seconds == 3 * 86400 and m.is_allowed("wrong order", "Ship Goods")


def test_text_format_errors_name_the_line(tmp_path: Path) -> None:
    from models import load_model

    path = tmp_path / "m.txt"
    path.write_text("process x\nA -> B\nB => C\n")
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert err.value.where["line"] == 3


def test_pnml_models_load_with_final_steps() -> None:
    from models import load_model
    from tests.conftest import real_log

    m = load_model(real_log("pm4py-running-example/running-example.pnml"))
    assert m.kind == "pnml"
    assert m.final_steps == {"pay compensation", "reject request"}


@pytest.mark.parametrize("text,seconds", [("2d", 172800), ("P2D", 172800), ("PT36H", 129600), ("1d 4h", 100800),
                                          ("90m", 5400), ("2 days", 172800), ("P1W", 604800)])
def test_durations(text: str, seconds: float) -> None:
    from models.model import parse_duration

    assert parse_duration(text) == seconds


def test_bad_duration_is_explained() -> None:
    from models.model import parse_duration

    with pytest.raises(ModelError, match="cannot read the duration"):
        parse_duration("two days")


def test_working_time_calendar() -> None:
    from models.model import Calendar

    cal = Calendar(timezone="Europe/Berlin")
    # Friday 15:00 UTC (16:00 Berlin, winter) to Monday 08:00 UTC (09:00 Berlin): 1 h Friday + 1 h Monday
    assert cal.working_seconds(datetime(2026, 1, 9, 15), datetime(2026, 1, 12, 8)) == 2 * 3600
    assert cal.working_seconds(datetime(2026, 1, 10, 9), datetime(2026, 1, 11, 18)) == 0  # weekend
    assert cal.working_seconds(datetime(2026, 1, 12, 8), datetime(2026, 1, 12, 7)) == 0
