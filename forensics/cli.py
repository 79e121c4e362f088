"""The ``forensics`` command: collect, case init, run, verify, compare, plan, validate, calibrate,
benchmark fetch and schema.

Errors in the user's input are printed as one line (``forensics: error: file:line: problem (fix: ...)``)
with a non-zero exit code and no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from forensics import __version__
from forensics.errors import ForensicsError


def _cmd_run(args: argparse.Namespace) -> int:
    from forensics.pipeline import run_case

    if args.workers is not None and args.workers < 1:
        raise ForensicsError(f"--workers {args.workers} is not a positive number", fix="give --workers 1 or more")
    out = run_case(args.case, args.out, quiet=args.quiet, cluster=args.cluster, workers=args.workers)
    print(f"findings: {out / 'findings.json'}")
    print(f"report:   {out / 'report.html'} and {out / 'report.pdf'}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from forensics.pipeline import run_case
    from forensics.verify import verify_run

    def rerun(case_file: Path, out_dir: Path) -> None:
        run_case(case_file, out_dir, quiet=True)

    result = verify_run(Path(args.run_dir), rerun, workdir=args.workdir)
    for line in result.lines():
        print(line)
    return 0 if result.ok else 3


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from forensics.verify import compare_findings

    def load(path: str) -> dict:
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ForensicsError(f"cannot read findings: {exc}", path=path,
                                 fix="give the findings.json of a finished run") from None

    differences = compare_findings(load(args.first), load(args.second))
    for difference in differences:
        print(difference.line())
    print("findings match (timestamps aside)" if not differences else f"{len(differences)} finding(s) differ")
    return 0 if not differences else 3


def _cmd_collect(args: argparse.Namespace) -> int:
    from forensics.collect import Settings, collect

    settings = Settings(endpoint=args.endpoint, model=args.model, temperature=args.temperature, top_p=args.top_p,
                        max_tokens=args.max_tokens, seed=args.seed, system=args.system,
                        concurrency=args.concurrency, rpm=args.rpm, timeout_s=args.timeout,
                        max_attempts=args.max_attempts, backoff_s=args.backoff)
    tally = collect(args.prompts, args.out, settings, api_key_env=args.api_key_env, quiet=args.quiet)
    print(f"{args.out}: {tally.line()}")
    if tally.failed:
        print(f"{tally.failed} prompt(s) recorded as failed (re-run the same command to retry them): "
              f"{', '.join(tally.failed_ids[:5])}{' ...' if tally.failed > 5 else ''}")
    return 0


def _cmd_case_init(args: argparse.Namespace) -> int:
    import yaml

    from forensics.case_init import init_case

    parameters = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ForensicsError(f"--param {item!r} is not KEY=VALUE", fix="e.g. --param seed=0")
        try:
            parameters[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ForensicsError(f"--param {item!r}: the value is not a YAML scalar or list",
                                 fix="quote text values, e.g. --param 'canaries=[\"x\"]'") from None
    path = init_case(args.case_file, suspect=args.suspect, teachers=args.teacher, references=args.reference,
                     case_id=args.id, title=args.title, parameters=parameters, force=args.force)
    print(f"case file written: {path} (run it with: forensics run {path})")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    from forensics.plan import plan, plan_lines

    result = plan(Path(args.run_dir))
    print(json.dumps(result, indent=1) if args.json else "\n".join(plan_lines(result)))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from forensics.validation import run_validation

    report = run_validation(Path(args.labels), Path(args.out))
    for line in report.summary_lines():
        print(line)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from forensics.validation import refit_calibration

    path = refit_calibration(Path(args.labels), Path(args.out) if args.out else None,
                             Path(args.validation_dir) if args.validation_dir else None)
    print(f"calibration written to {path}")
    return 0


def _cmd_benchmark_fetch(args: argparse.Namespace) -> int:
    from forensics.fetch import fetch

    written = fetch(Path(args.dest), args.source, args.name)
    print(f"{len(written) - 1} files verified (sha256) and LABELS.csv written to {Path(args.dest)}")
    print(f"refit the shipped calibration with: forensics calibrate {Path(args.dest) / 'LABELS.csv'}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from forensics.results import SCHEMA, Findings, schema_text

    if not args.findings:
        print(schema_text(), end="")
        return 0
    for path in args.findings:
        Findings.read(path)  # raises InputError naming the file and the first field off the contract
        print(f"{path}: follows the findings contract (schema {SCHEMA})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forensics", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--version", action="version", version=f"forensics {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a case end to end (notebooks, findings, report)")
    run.add_argument("case", help="the case file (case.yaml)")
    run.add_argument("--out", help="run folder (default: runs/<case>/)")
    run.add_argument("--quiet", action="store_true", help="no step-by-step progress")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="ADDRESS",
                       help="embed and compute per-prompt statistics on the Dask cluster whose scheduler is "
                            "at ADDRESS (e.g. tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="embed and compute per-prompt statistics on a local Dask cluster of N worker "
                            "processes")
    run.set_defaults(func=_cmd_run)

    verify = sub.add_parser("verify", help="re-hash the inputs of a run, re-execute it, compare findings")
    verify.add_argument("run_dir", help="a run folder holding manifest.json and findings.json")
    verify.add_argument("--workdir", metavar="DIR",
                        help="keep the re-executed run in DIR/rerun (its report, artifacts and manifest) instead "
                             "of a temporary folder, to read what differs; DIR/rerun must not exist")
    verify.set_defaults(func=_cmd_verify)

    compare = sub.add_parser("compare", help="compare two findings.json field by field (timestamps aside)")
    compare.add_argument("first", help="findings.json of one run")
    compare.add_argument("second", help="findings.json of another run")
    compare.set_defaults(func=_cmd_compare)

    schema = sub.add_parser("schema", help="print the JSON Schema of findings.json, or check findings files "
                                           "against it")
    schema.add_argument("findings", nargs="*", help="findings.json files to check (none: print the schema)")
    schema.set_defaults(func=_cmd_schema)

    _add_collect(sub)
    _add_case(sub)

    plan = sub.add_parser("plan", help="estimate from a pilot run how many prompts a full collection needs")
    plan.add_argument("run_dir", help="the run folder of a pilot (holding findings.json)")
    plan.add_argument("--json", action="store_true", help="print the estimate as JSON")
    plan.set_defaults(func=_cmd_plan)

    labels_help = "LABELS.csv of a labelled benchmark (files beside it)"
    validate = sub.add_parser("validate", help="leave-one-lineage-out validation on labelled cases")
    validate.add_argument("labels", help=labels_help)
    validate.add_argument("--out", default="validation", help="folder for the validation artifacts")
    validate.set_defaults(func=_cmd_validate)

    calibrate = sub.add_parser("calibrate", help="refit the shipped score-to-LR calibration")
    calibrate.add_argument("labels", help=labels_help)
    calibrate.add_argument("--out", help="calibration file to write (default: the shipped one)")
    calibrate.add_argument("--validation-dir", default="validation",
                           help="folder for the leave-one-lineage-out validation artifacts")
    calibrate.set_defaults(func=_cmd_calibrate)

    benchmark = sub.add_parser("benchmark", help="the labelled benchmark the calibration is fitted on")
    bench_sub = benchmark.add_subparsers(dest="benchmark_command", required=True)
    fetch = bench_sub.add_parser("fetch", help="fetch the labelled files at the pinned commit, verify each "
                                               "file's sha256, write LABELS.csv beside them")
    fetch.add_argument("dest", help="folder to write the files and LABELS.csv into")
    fetch.add_argument("--source", help="a local folder with the layout results/<model>/model_outputs.json "
                                        "(a checkout of the source repository), or a mirror's URL; default: "
                                        "the source repository's raw files at the pinned commit")
    fetch.add_argument("--name", default="alpaca_eval", help="which labelled benchmark (default: %(default)s)")
    fetch.set_defaults(func=_cmd_benchmark_fetch)
    return parser


def _add_collect(sub: argparse._SubParsersAction) -> None:
    collect = sub.add_parser("collect", help="ask a model behind an OpenAI-compatible API to answer prompts",
                             description="Append one JSON Lines record per answer to --out, resumably.")
    collect.add_argument("prompts", help="prompts (.jsonl/.csv/.parquet/.json) or conversations (messages / "
                                         "ShareGPT layouts)")
    collect.add_argument("--endpoint", required=True, help="base URL, e.g. http://127.0.0.1:8000/v1")
    collect.add_argument("--model", required=True, help="model name the server expects")
    collect.add_argument("--out", required=True, help="JSON Lines file to append answers to (resumable)")
    collect.add_argument("--api-key-env", metavar="VAR",
                         help="name of the environment variable holding the API key (never written anywhere)")
    collect.add_argument("--temperature", type=float, help="sampling temperature (default: the server's)")
    collect.add_argument("--top-p", type=float, help="nucleus sampling (default: the server's)")
    collect.add_argument("--max-tokens", type=int, help="longest answer; answers cut there are flagged")
    collect.add_argument("--seed", type=int, help="sampling seed, where the server honours it")
    collect.add_argument("--system", help="system prompt added to requests that have none")
    collect.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    collect.add_argument("--rpm", type=float, help="at most this many requests per minute (retries count)")
    collect.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    collect.add_argument("--max-attempts", type=int, default=5,
                         help="tries per prompt before it is recorded as failed (default 5)")
    collect.add_argument("--backoff", type=float, default=1.0,
                         help="first retry delay in seconds, doubled each retry (default 1)")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(func=_cmd_collect)


def _add_case(sub: argparse._SubParsersAction) -> None:
    case = sub.add_parser("case", help="case files")
    case_sub = case.add_subparsers(dest="case_command", required=True)
    init = case_sub.add_parser("init", help="write a case.yaml from collected files and their roles")
    init.add_argument("case_file", help="the case file to write (its folder must hold the exchange files)")
    spec = "NAME=PATH, or PATH (name: the collected model, else the file name)"
    init.add_argument("--suspect", required=True, metavar="SPEC", help=f"the suspect model's answers: {spec}")
    init.add_argument("--teacher", action="append", required=True, metavar="SPEC",
                      help=f"a candidate teacher (repeat for several): {spec}")
    init.add_argument("--reference", action="append", required=True, metavar="SPEC",
                      help=f"a reference model of the panel (repeat; 4 or more, from different developers, "
                           f"advised): {spec}")
    init.add_argument("--id", help="case identifier (default: the folder's name)")
    init.add_argument("--title", help="one-line question the case answers")
    init.add_argument("--param", action="append", metavar="KEY=VALUE",
                      help="an analysis parameter (repeat), e.g. --param seed=0 --param min_prompts=50")
    init.add_argument("--force", action="store_true", help="replace an existing case file")
    init.set_defaults(func=_cmd_case_init)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a reader that went away is seen here, not at interpreter exit
        return code
    except ForensicsError as exc:
        print(f"forensics: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        kept = " (the answers already written are kept)" if args.command == "collect" else " from the cache"
        print(f"forensics: interrupted; re-run the same command to resume{kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`forensics compare a b | head`): not an error of ours; stop quietly
        # and keep Python from reporting the pipe again when it flushes stdout at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
