"""The simulated serial counter box (``takt-sim-serialbox``) on a pty pair.

The simulator holds the master; the reader opens ``<run>/serial-<station>``, a
symlink to the current slave (``/dev/pts/N``). Unplugging closes both ends (the
reader gets an I/O error, as with a pulled USB adapter); plugging back creates a
new pty and swings the symlink, so the path the reader knows stays valid.
"""

from __future__ import annotations

import logging
import os
import random
import termios
import tty
from pathlib import Path

from simulators.devicestate import DeviceState
from simulators.frames import corrupt, serial_frame

log = logging.getLogger(__name__)


class SerialBox:
    def __init__(
        self, station: str, folder: Path, start_epoch_ms: int, corrupt_p: float, seed: int
    ) -> None:
        self.station = station
        self.link = folder / f"serial-{station}"
        self.path_file = folder / f"serial-{station}.path"
        self._epoch0 = start_epoch_ms
        self._corrupt_p = corrupt_p
        self._rng = random.Random(f"{seed}/{station}/serial")
        self._master: int | None = None
        self._slave: int | None = None
        self.pts = ""
        self.frames = 0
        self.corrupted = 0
        self.dropped = 0
        self.unplugs = 0
        self._last_ts = -1

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        """Create a fresh pty pair and point the stable symlink at its slave."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)  # no echo, no CR/LF translation: bytes as sent
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pts = os.ttyname(slave)
        tmp = self.link.with_name(self.link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.pts)
        tmp.replace(self.link)
        self.path_file.write_text(str(self.link) + "\n")

    def unplug(self) -> None:
        """Both ends closed: an open reader sees EIO/EOF, frames are lost until replugged."""
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.unplugs += 1

    def close(self) -> None:
        if self._master is not None:
            self.unplug()
            self.unplugs -= 1
        self.link.unlink(missing_ok=True)

    def write_frame(self, state: DeviceState, ts_ms: int) -> None:
        """One frame, now and then corrupted; dropped when unplugged or nobody reads."""
        frame = serial_frame(state, self._epoch0 + ts_ms)
        if self._corrupt_p and self._rng.random() < self._corrupt_p:
            frame = corrupt(frame, self._rng)
            self.corrupted += 1
        if self._master is None:
            self.dropped += 1
            return
        try:
            written = os.write(self._master, frame)
        except BlockingIOError:
            self.dropped += 1  # the pty buffer is full: nobody is reading
            return
        except OSError as err:
            log.warning("serial %s: write failed: %s", self.station, err)
            self.dropped += 1
            return
        if written < len(frame):
            self.dropped += 1  # a partial frame on the wire, as a real line would show
        self.frames += 1

    async def publish(self, station: str, state: DeviceState, ts_ms: int, kind: str) -> None:
        if kind == "heartbeat" and ts_ms == self._last_ts:
            return  # a change frame already carried this instant
        self._last_ts = ts_ms
        self.write_frame(state, ts_ms)
