"""The plugin example in the README works exactly as printed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.decode.items import DigitizerBoard, EventContext, RunInfo
from cygno_online.params import Params

README = Path(__file__).resolve().parents[2] / "README.md"


class NoDecoder:
    def begin_run(self, run):
        pass


def test_readme_plugin_example(tmp_path):
    text = README.read_text()
    section = text.split("## Writing an analyzer plugin", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    (tmp_path / "gem_sum.py").write_text(code)
    config["plugin_paths"] = [str(tmp_path)]
    chain = AnalysisChain.from_params(Params(config), AnalyzerEnv(), decoder=NoDecoder())
    assert [a.name for a in chain.analyzers] == ["camera", "gem_sum"]
    chain.begin_run(RunInfo(run=4, start_time_ns=0))
    wf = np.zeros((2, 8, 16), dtype=np.uint16)
    wf[:, 5, :] = 1
    wf[:, 6, :] = 2
    wf[:, 7, :] = 100  # channel 7 is not configured
    ctx = EventContext(run=4, serial=9, event_id=1, trigger_mask=0, time_ns=1)
    board = DigitizerBoard(
        ctx, 0, 1742, 16, 8, 2, 4096, 1333, 1.333, np.zeros(8), np.zeros(2, np.uint32), wf, "A"
    )
    result = chain.process_items([board])
    (m,) = [o for o in result.outputs if isinstance(o, Metric)]
    assert m.fields == {"gem_sum": float(2 * 16 * (1 + 2))} and m.tags == {"board": "0"}
    assert chain.end_run()["gem_sum"] == {"images": 1}
    # its declaration joins the metric catalogue, and matches what it emitted
    from cygno_online.analysis.catalogue import catalogue_of_chain

    cat = catalogue_of_chain(chain)
    assert cat.find("pmt", "gem_sum", ["board"]).unit == "ADC"
    assert cat.check_point(m.family, m.tags, m.fields) == []
