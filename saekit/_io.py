"""How saekit writes and reads its files: atomically, and with a saekit error for damaged ones.

Every artefact saekit saves goes through `atomic_file` (one file: written beside, then
renamed over the old one) or `atomic_folder` (a folder of files: written into a sibling,
then swapped in as a whole), so an interrupted save leaves the old artefact or the new one,
never a mix. JSON goes through `dumps_json`, which writes NaN and infinity as ``null``
(bare ``NaN`` is not JSON). The readers turn a missing, truncated or malformed file into the
caller's saekit error naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from saekit.errors import SaekitError


def check_folder_target(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path if a folder can be saved there; called before expensive work too."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SaekitError(f"{folder} is a file, not a folder; choose a folder to save into.")
    return folder


def check_file_target(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a file can be saved there; called before expensive work too."""
    path = Path(path)
    if path.is_dir():
        raise SaekitError(f"{path} is a folder; name a file to write, such as {path / 'out.json'}.")
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it replaces ``path``.

    On any error the temporary file is removed and ``path`` keeps its old content.
    """
    path = check_file_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty sibling folder to write into; once the block succeeds it replaces ``folder``.

    Entries of the old folder that the block did not write (a ``ground_truth.json`` beside a
    retrained model, say) are carried over, so the swap replaces the artefact and nothing else.
    The old folder is renamed aside before the new one takes its name, and put back if that
    rename fails; on any error the old folder is left as it was.
    """
    folder = check_folder_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    aside = None
    try:
        yield staging
        if folder.exists():
            for entry in folder.iterdir():
                target = staging / entry.name
                if not target.exists():
                    copy = shutil.copytree if entry.is_dir() else shutil.copy2
                    copy(entry, target)
            aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, aside)
            try:
                os.replace(staging, folder)
            except BaseException:
                os.replace(aside, folder)
                aside = None
                raise
        else:
            os.replace(staging, folder)
    finally:
        for leftover in (staging, aside):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def dumps_json(value: Any) -> str:
    """Indented JSON of ``value``; NaN and infinity become ``null`` (see `json_ready`)."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically and return the path."""
    with atomic_file(path) as temporary:
        temporary.write_text(dumps_json(value))
    return Path(path)


def parse_json(text: str, error: type[SaekitError], what: str, fix: str) -> Any:
    """The JSON value in ``text``; ``error`` naming ``what`` and ``fix`` if it is malformed
    (a trailing comma, single quotes, a truncated file)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise error(f"{what} is not valid JSON ({err}). {fix}") from None


def read_json(path: str | os.PathLike, error: type[SaekitError], fix: str) -> Any:
    """The JSON in ``path``; ``error`` naming the file and ``fix`` if it is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{path} is missing. {fix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path} is not readable ({err}). {fix}") from None
    return parse_json(text, error, str(path), fix)


def read_safetensors(path: str | os.PathLike, error: type[SaekitError], fix: str) -> dict[str, Any]:
    """The tensors in ``path``; ``error`` naming the file and ``fix`` if it is missing or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(path)
    except FileNotFoundError:
        raise error(f"{path} is missing. {fix}") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise error(f"{path} is damaged or truncated ({err}). {fix}") from None
