"""The ``forensics`` command: run, verify, compare, plan, validate and calibrate.

Errors in the user's input are printed as one line (``forensics: error: file:line: problem (fix: ...)``)
with a non-zero exit code and no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
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

    result = verify_run(Path(args.run_dir), rerun)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forensics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"forensics {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a case end to end (notebooks, findings, report)")
    run.add_argument("case", help="the case file (case.yaml)")
    run.add_argument("--out", help="run folder (default: runs/<case>/)")
    run.add_argument("--quiet", action="store_true", help="no step-by-step progress")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="ADDRESS",
                       help="embed on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="embed on a local Dask cluster of N worker processes")
    run.set_defaults(func=_cmd_run)

    verify = sub.add_parser("verify", help="re-hash the inputs of a run, re-execute it, compare findings")
    verify.add_argument("run_dir", help="a run folder holding manifest.json and findings.json")
    verify.set_defaults(func=_cmd_verify)

    compare = sub.add_parser("compare", help="compare two findings.json field by field (timestamps aside)")
    compare.add_argument("first", help="findings.json of one run")
    compare.add_argument("second", help="findings.json of another run")
    compare.set_defaults(func=_cmd_compare)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ForensicsError as exc:
        print(f"forensics: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("forensics: interrupted; re-run the same command to resume from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
