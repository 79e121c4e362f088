"""From collection to report: a suspect collected over HTTP, a case written by ``case init``, ``forensics run``.

The suspect's answers are collected with ``forensics collect`` from the fault-injecting server replaying
alpaca-7b's real demo outputs (one prompt failing on every retry, one answer cut at max_tokens, an API
key required and planted); the teacher and the panel are the small demo case's files. The case runs end
to end; the findings and the report's custody appendix must show how the suspect's answers were
collected (escaped), the failed prompt must leave the analysis with a counted warning, the cut one stay
with one, and the key must appear in no file the collection or the run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forensics.cli import main
from forensics.exchanges import read_exchanges

sys.path.insert(0, str(Path(__file__).parent))
from openai_fault_server import FaultServer  # noqa: E402

KEY = "sk-planted-e2e-9f8e7d6c5b4a"
MODEL = "alpaca-7b<i>replayed</i>"
RUN_TIMEOUT_S = 600


@pytest.mark.slow
def test_collected_suspect_runs_end_to_end(tmp_path: Path, make_small_case, forensics_cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    small = make_small_case(tmp_path / "demo")
    demo = read_exchanges(small.parent / "exchanges" / "alpaca-7b.jsonl").frame
    answers = dict(zip(demo["prompt"], demo["response"], strict=True))
    prompts = sorted(answers)
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts),
                                          encoding="utf-8")
    others = {"text-davinci-003.json": "teacher", "guanaco-13b.csv": "reference",
              "gpt-4-0314.parquet": "reference"}
    for name in others:
        (folder / name).write_bytes((small.parent / "exchanges" / name).read_bytes())

    monkeypatch.setenv("E2E_API_KEY", KEY)
    with FaultServer(answers=answers, require_key=KEY, always_fail=frozenset(prompts[:1]),
                     cut_off=frozenset(prompts[1:2])) as server:
        assert main(["collect", str(folder / "prompts.jsonl"), "--endpoint", server.url, "--model", MODEL,
                     "--out", str(folder / "suspect.jsonl"), "--api-key-env", "E2E_API_KEY", "--temperature", "0",
                     "--max-tokens", "512", "--backoff", "0.01", "--max-attempts", "3", "--quiet"]) == 0
    roles = [f"--{role}={folder / name}" for name, role in others.items()]
    assert main(["case", "init", str(folder / "case.yaml"), f"--suspect=alpaca-7b={folder / 'suspect.jsonl'}",
                 *roles, "--id", "collected", "--param", "bootstrap=50", "--param", "permutations=100",
                 "--param", "min_prompts=30"]) == 0
    assert yaml.safe_load((folder / "case.yaml").read_text())["teachers"][0]["name"] == "text-davinci-003"

    env = {**os.environ, "FORENSICS_CACHE": str(forensics_cache), "HF_HUB_OFFLINE": "1", "E2E_API_KEY": KEY}
    run = tmp_path / "run"
    done = subprocess.run([str(Path(sys.executable).parent / "forensics"), "run", str(folder / "case.yaml"),
                           "--out", str(run), "--quiet"], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]

    findings = json.loads((run / "findings.json").read_text(encoding="utf-8"))
    suspect = next(i for i in findings["inputs"] if i["role"] == "suspect")
    collection = suspect["collection"]
    assert collection["endpoints"] == [server.url] and collection["models"] == [MODEL]
    assert (collection["answered"], collection["failed"], collection["truncated"]) == (len(prompts) - 1, 1, 1)
    assert collection["parameters"] == [{"temperature": 0.0, "top_p": None, "max_tokens": 512, "seed": None,
                                         "system": None}]
    codes = {w["code"]: w["count"] for w in findings["data"]["warnings"] if w.get("source") == "alpaca-7b"}
    assert codes["failed_request"] == 1 and codes["length_truncated"] == 1
    assert findings["data"]["n_prompts_analysed"] == len(prompts) - 1
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert next(i for i in manifest["inputs"] if i["role"] == "suspect")["collection"] == collection

    report = (run / "report.html").read_text(encoding="utf-8")
    appendix = report[report.index("<h3>Collection</h3>"):]
    appendix = appendix[:appendix.index("</table>")]
    assert server.url in appendix and "alpaca-7b&lt;i&gt;replayed&lt;/i&gt;" in appendix
    assert "<i>replayed" not in report
    assert f"{len(prompts) - 1} answered, 1 cut at max_tokens, 1 failed" in appendix
    assert '&#34;max_tokens&#34;: 512' in appendix or '"max_tokens": 512' in appendix

    written = [p for root in (folder, run) for p in root.rglob("*") if p.is_file()]
    assert len(written) > 20
    assert [p for p in written if KEY.encode() in p.read_bytes()] == []
