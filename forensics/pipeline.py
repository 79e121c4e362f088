"""Run a case end to end: the numbered notebooks in order with papermill, then check the outputs.

The notebooks are the record an investigator reads; the package does the work. ``run_case`` validates
the case and embeds every text in this process first (so bad input fails in one line before anything is
written, and the command line shows an embedding progress bar), then executes the notebooks headless
into a staging folder and only renames it onto the run folder when every notebook succeeded: a failed
run never leaves a findings file or report that looks complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.errors import ForensicsError

if TYPE_CHECKING:
    from forensics.case import Case

log = logging.getLogger(__name__)

#: Where the numbered notebooks live (the repository's ``notebooks/`` folder).
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_NAME = "forensics"
#: Outputs a complete run must have; checked before the staging folder is promoted.
REQUIRED_OUTPUTS = ("findings.json", "report.html", "report.pdf", "manifest.json")
#: Everything a run writes at the top of its folder: a folder holding anything else is not a run folder,
#: and a run never replaces (deletes) it.
RUN_ENTRIES = frozenset({*REQUIRED_OUTPUTS, "artifacts", "figures", "notebooks"})
#: Files a desktop leaves in any folder it has shown (a run folder browsed in Finder or Explorer).
DESKTOP_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def notebooks() -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in run order."""
    found = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ForensicsError("no notebooks found", path=NOTEBOOK_DIR,
                             fix="run from a full checkout of the forensics repository")
    return found


def ensure_kernel() -> str:
    """Make sure the ``forensics`` kernel exists and runs this interpreter; install it if not.

    A user-level ``python3`` kernel left by another environment can silently run notebooks with the wrong
    Python, so papermill is always given this kernel by name.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (forensics)", prefix=sys.prefix)
    return KERNEL_NAME


def default_run_dir(case_id: str) -> Path:
    return Path("runs") / case_id


def _deterministic_env() -> None:
    """Settings the kernels inherit so that two runs give the same bits."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def prepare(case: Case, client: Any = None, threads: int | None = None) -> None:
    """Validate the case and embed every analysable response here, with a progress bar on the terminal.

    The notebooks then find every vector in the cache. Errors in the input surface here as one line.
    With a Dask ``client`` (:func:`compute_cluster`) the missing vectors are computed on its cluster
    (:mod:`forensics.cluster`; ``threads`` torch threads per worker), bit for bit the same as here.
    """
    from forensics.embeddings import case_embedders
    from forensics.exchanges import join_case
    from forensics.memory import release_unused_memory

    corpus = join_case(case).corpus()
    release_unused_memory()  # the joined frame's texts, freed, before the model and the store's reads
    embedders = case_embedders(case)
    if client is None:
        embedders.fill_cache(corpus, case.parameters.opening_words, progress="embedding responses")
    else:
        from forensics import cluster as dask_cluster

        for embedder, texts in embedders.jobs(corpus, case.parameters.opening_words):
            dask_cluster.fill_cache_on_cluster(embedder, texts, client, progress="embedding on the cluster",
                                               threads=threads)
    print(embedders.stats_line(), file=sys.stderr)


@contextlib.contextmanager
def compute_cluster(cluster: str | None, workers: int | None) -> Iterator[tuple[Any, int | None]]:
    """``(client, torch threads per worker)`` of the Dask cluster at ``cluster`` or of a local one of
    ``workers`` processes, named to the notebooks for the per-prompt statistics
    (:func:`forensics.cluster.shared`); ``(None, None)`` when neither is given (one process)."""
    if not (cluster or workers):
        yield None, None
        return
    from forensics import cluster as dask_cluster

    threads = None if cluster else dask_cluster.local_threads(workers or 2)
    with dask_cluster.connect(cluster, workers) as client, dask_cluster.shared(client):
        yield client, threads


def execute_notebooks(case_file: Path, run_dir: Path, kernel: str,
                      on_step: Callable[[str], None] | None = None) -> None:
    import papermill as pm

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"case_file": str(case_file), "run_dir": str(run_dir)}
    with tempfile.TemporaryDirectory(prefix="forensics-kernel-") as sockets:
        config = kernel_config(Path(sockets))
        for nb in notebooks():
            if on_step:
                on_step(nb.stem)
            started = time.monotonic()
            try:
                pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters=params, kernel_name=kernel,
                                    cwd=str(run_dir), progress_bar=False, log_output=False, config=config)
            except pm.PapermillExecutionError as exc:
                raise ForensicsError(f"notebook {nb.name} failed: {exc.ename}: {exc.evalue}",
                                     path=out_dir / nb.name,
                                     fix="open the executed notebook to see the failing cell") from None
            log.info("%s finished in %.1f s", nb.stem, time.monotonic() - started)


def kernel_config(socket_dir: Path) -> Any:
    """Talk to the kernel over Unix sockets in a private folder where the OS has them, else over TCP.

    The default transport (TCP on localhost, unencrypted) lets any local user read the hostile texts and
    the code going to the kernel, and ipykernel warns about it on every run; IPC sockets in a folder only
    this user can open do not.
    """
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(socket_dir / "kernel")
    return config


def run_case(case_file: str | Path, out_dir: str | Path | None = None, *, quiet: bool = False,
             cluster: str | None = None, workers: int | None = None) -> Path:
    """Run the whole case headless and return the run folder.

    Work happens in ``<out>.partial``; on success it replaces ``<out>`` in one rename, so ``<out>`` is
    always either the previous complete run or the new complete run. ``cluster``/``workers``: embedding
    and the steps' per-prompt statistics run on Dask (:func:`compute_cluster`); the findings are the same.
    """
    from forensics.case import load_case
    from forensics.memory import release_unused_memory
    from forensics.scoring import MIN_PANEL

    _deterministic_env()
    case_file = Path(case_file).resolve()
    case = load_case(case_file, min_references=MIN_PANEL)
    out = Path(out_dir) if out_dir else default_run_dir(case.case_id)
    out = out.resolve()
    staging = out.with_name(out.name + ".partial")
    for folder in (out, staging, out.with_name(out.name + ".old")):
        check_replaceable(folder)
    shutil.rmtree(staging, ignore_errors=True)

    def say(step: str) -> None:
        if not quiet:
            print(f"running {step}", file=sys.stderr, flush=True)

    with compute_cluster(cluster, workers) as (client, threads):
        prepare(case, client, threads)
        release_unused_memory()  # this process waits while the notebooks' kernels work
        staging.mkdir(parents=True)
        execute_notebooks(case_file, staging, ensure_kernel(), on_step=say)
    missing = [name for name in REQUIRED_OUTPUTS if not (staging / name).exists()]
    if missing:
        raise ForensicsError(f"the run finished without {', '.join(missing)}", path=staging,
                             fix="open the executed notebooks in the folder to see what went wrong")
    record_notebooks(staging)
    _promote(staging, out)
    return out


def check_replaceable(folder: Path) -> None:
    """Refuse to run into ``folder`` unless replacing it loses nothing but an earlier run: it does not exist,
    or it is a folder holding only what a run writes (:data:`RUN_ENTRIES`, and an interrupted atomic write's
    hidden temporary file). ``--out`` pointing at the case folder, a home folder or a file must stop the
    run before anything is deleted, not after."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise ForensicsError("the output path exists and is not a run folder", path=folder,
                             fix="pass --out a new folder, or an earlier run's folder (it is replaced)")
    foreign = sorted(p.name for p in folder.iterdir()
                     if p.name not in RUN_ENTRIES | DESKTOP_CLUTTER
                     and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ForensicsError(f"the output folder holds files a run did not write ({shown}); a run replaces "
                             f"its output folder, so it will not use this one", path=folder,
                             fix="pass --out a new folder, or an earlier run's folder (it is replaced)")


def record_notebooks(run_dir: Path) -> None:
    """Hash the executed notebooks into the run's manifest, as every other artifact is, so that ``forensics
    verify`` catches an edited notebook too (they are written by papermill, not through the run folder)."""
    from forensics.custody import Manifest

    manifest = Manifest.load(run_dir)
    for path in sorted((run_dir / "notebooks").glob("*.ipynb")):
        manifest.record_artifact(path, "run")
    manifest.save()


def _promote(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` with renames only (never a half-copied folder)."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(old)
