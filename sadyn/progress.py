"""Progress reporting that works on a terminal and in a log file alike.

:func:`progress` returns a tqdm bar when stderr is a terminal, and otherwise a
:class:`LineProgress` that prints plain, complete lines at a fixed interval (default every 30 s,
``$SADYN_PROGRESS_SECONDS`` to change it), each with the count, the rate and the ETA::

    train itrsa: 120/2700 steps (4.4%), 1.93 steps/s, elapsed 1m02s, ETA 22m17s, loss=0.4213

so a job whose output goes to a pipe or a file (``nohup``, CI, ``| tee``) still shows that it
is alive and how long it has left. ``enable=False`` gives a silent object with the same methods.

Both objects support the subset of tqdm's interface used in sadyn: iteration, ``update(n)``,
``set_postfix(**kw)``, ``set_description(str)``, ``close()`` and use as a context manager.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

ENV_SECONDS = "SADYN_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``4000`` -> ``"1h06m"``, ``9.5`` -> ``"9.5s"``; ``"?"`` if unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _interval() -> float:
    try:
        value = float(os.environ.get(ENV_SECONDS, DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS
    return value if value >= 0 else DEFAULT_SECONDS


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """tqdm-like progress as plain lines: one every ``interval`` seconds and one at the end
    (unless the whole loop took under a second); each a complete line, flushed."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        interval: float | None = None,
        file: IO[str] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.initial = initial
        self.interval = _interval() if interval is None else interval
        self.file = file
        self.postfix = ""
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._closed = False
        self.min_final = 1.0

    # tqdm interface -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.total and self.n >= self.total:
            return  # the final line (close) follows
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._emit()

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(final=True)

    # -------------------------------------------------------------------------------------
    def line(self, *, final: bool = False) -> str:
        """The current status line (what :meth:`update` prints)."""
        elapsed = self._clock() - self._start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else math.nan
        count = f"{self.n:g}"
        if self.total:
            count += f"/{self.total:g} {self.unit} ({100 * self.n / self.total:.1f}%)"
        else:
            count += f" {self.unit}"
        parts = [f"{self.desc}: {count}" if self.desc else count]
        if done > 0 and elapsed > 0:
            speed = f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}"
            parts.append(speed)
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if final:
            parts.append("done")
        elif self.total and done > 0:
            parts.append(f"ETA {format_seconds((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _emit(self, *, final: bool = False) -> None:
        if final and self._clock() - self._start < self.min_final:
            return  # a loop this short needs no line
        text = self.line(final=final)
        stream = self.file if self.file is not None else sys.stderr
        print(text, file=stream, flush=True)


class _Silent:
    """A progress object that prints nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None, **_: Any) -> None:
        self.iterable = iterable
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        yield from (() if self.iterable is None else self.iterable)

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: float = 0,
    enable: bool = True,
    leave: bool = False,
    file: IO[str] | None = None,
) -> Any:
    """A progress bar over ``iterable`` (or a manual one with ``total``): tqdm on a terminal,
    :class:`LineProgress` lines otherwise, silent when ``enable`` is False."""
    if not enable:
        return _Silent(iterable)
    stream = file if file is not None else sys.stderr
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            leave=leave,
            dynamic_ncols=True,
            file=stream,
        )
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file)


__all__ = ["DEFAULT_SECONDS", "ENV_SECONDS", "LineProgress", "format_seconds", "progress"]
