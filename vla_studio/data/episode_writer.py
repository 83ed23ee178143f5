"""Writing one episode file while it is recorded, and sealing it when it ends.

```
 create()  file + every dataset + the journal + the attributes known at start, then SWMR mode
           on, then the file's disk reserve (see vla_studio.data.file_space)
 append()  resize and fill every step dataset, image bytes, depth chunks   (one batch)
 commit()  flush; write the committed step count; flush; fsync at most once per interval
 close()   clean HDF5 close (clears the superblock's open-for-write flags)
 seal_episode()  reopen read-write: cut to the committed steps, set is_last/is_terminal and
                 reward, write the final attributes, drop the journal, give the unused reserve
                 back                                                          (also recovery)
```
SWMR keeps the file readable at every flush, so a SIGKILL loses only what was not committed.
The committed count is written only after the data it covers was flushed: recovery trusts it.
The journal (:mod:`vla_studio.data.episode_journal`) also carries the verdict and the steps the
recorder never got, so a crash loses neither.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from vla_studio.data.annotations import write_annotations
from vla_studio.data.checksums import (ALGORITHM, DEPTH_CRC, FRAME_CRC, STEP_CHUNKS,
                                       covered_columns, covers_attr, rows_crc32c)
from vla_studio.data.episode_file import (DEPTH, FORMAT, FORMAT_VERSION, IMAGE,
                                          SOURCE_LABELS, STATE, STEPS, STATUS_RECORDING,
                                          SUCCESS_SUCCESS, TIMING, success_to_bool)
from vla_studio.data.episode_journal import create_journal, seal_journal, source_code
from vla_studio.data.file_space import (SEAL_RESERVE_BYTES, NoPreallocation, bytes_beyond_end,
                                        preallocate, release_preallocation)
from vla_studio.data.step_encoder import EpisodeSchema, StepBatch

log = logging.getLogger(__name__)

ROW_CHUNK = 256  # steps per chunk of the per-step datasets
IMAGE_DATA_CHUNK = 1 << 16  # bytes per chunk of the concatenated image buffers
# Room kept for HDF5's own growth (chunk allocations, metadata, the final attributes).
WRITE_MARGIN_BYTES = 2 << 20
CLOSE_ROOM_BYTES = SEAL_RESERVE_BYTES // 2  # what closing a file after a failed write needs

# File handles HDF5 could not close after a failed write. Freeing such a handle makes HDF5
# crash the process (measured with h5py 3.14 / HDF5 1.14), so they are pinned for the life of the
# process instead; the file on disk stays recoverable as of its last commit.
_UNCLOSABLE: list[object] = []


def _pin_forever(*objects: object) -> None:
    for obj in objects:
        if obj is None:
            continue
        _UNCLOSABLE.append(obj)
        # An extra reference that is never released: not even interpreter shutdown frees it.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
        oid = getattr(obj, "id", None)
        if oid is not None:
            _UNCLOSABLE.append(oid)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(oid))


class DiskFullError(OSError):
    """Raised *before* writing when a batch would not fit: the file is untouched and valid."""


def encode_attr(value: Any) -> Any:
    """Attribute value as stored: dicts and lists as JSON text, None as ""."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if value is None:
        return ""
    return value


class EpisodeFileWriter:
    """Appends steps to one ``.h5.recording`` file (writer thread only).

    Args:
        path: the in-progress file to create.
        schema: datasets to lay out.
        attrs: root attributes known at start (format/version/status are added).
        fsync_interval_s: at most this long between fsyncs (power-cut safety).
        image_sizes: actual colour ``(width, height)`` per camera when known (first frame).
    """

    def __init__(self, path: Path, schema: EpisodeSchema, attrs: Mapping[str, Any], *,
                 fsync_interval_s: float = 1.0, min_free_bytes: int = 0,
                 space_guard: bool = True) -> None:
        self.path = Path(path)
        self.schema = schema
        self.attrs = dict(attrs)
        self.fsync_interval_s = fsync_interval_s
        self.min_free_bytes = min_free_bytes
        self.space_guard = space_guard
        self._f: h5py.File | None = None
        self._rows: dict[str, h5py.Dataset] = {}
        self._data: dict[str, h5py.Dataset] = {}
        self._depth: dict[str, h5py.Dataset] = {}
        self._committed: h5py.Dataset | None = None
        self._chunks: h5py.Dataset | None = None  # checksums/step_chunks
        self._covers: list[str] = []  # step datasets its CRCs cover, in order
        self._verdict: h5py.Dataset | None = None
        self._dropped: h5py.Dataset | None = None
        self._can_preallocate = True
        self.verdict: tuple[int, str] = (-1, "")  # as committed to the journal
        self.num_steps = 0
        self.committed_steps = 0
        self.last_t: float | None = None  # tick time of the last appended step
        self.committed_last_t: float | None = None
        self.data_bytes = {c.name: 0 for c in schema.cameras if c.color}
        self._last_fsync = 0.0

    @property
    def is_open(self) -> bool:
        return self._f is not None

    def create(self) -> None:
        """Create the file, every dataset and the start attributes; switch to SWMR."""
        s = self.schema
        if self.space_guard:
            self._ensure_room(StepBatch())
        f = h5py.File(self.path, "w-", libver="latest")
        try:
            attrs = {"format": FORMAT, "format_version": FORMAT_VERSION,
                     "status": STATUS_RECORDING, **self.attrs}
            for key, value in attrs.items():
                f.attrs[key] = encode_attr(value)
            steps = f.create_group(STEPS)
            d = s.action_dim
            self._row("action", steps, (d,), "f4")
            self._row("requested_action", steps, (d,), "f4")
            src = self._row("action_source", steps, (), "u1")
            src.attrs["labels"] = json.dumps(list(SOURCE_LABELS))
            self._row("safety_flags", steps, (), "u4")
            for name in ("is_first", "is_last", "is_terminal"):
                self._row(name, steps, (), "bool")
            self._row("reward", steps, (), "f4")
            self._row("discount", steps, (), "f4")
            ts = self._row("timestamp", steps, (), "f8")
            ts.attrs["t0_unix"] = float(self.attrs.get("start_time_unix", time.time()))
            if s.with_policy:
                self._row("policy_action", steps, (d,), "f4")
                self._row("confidence", steps, (), "f4")
                self._row("policy_latency_ms", steps, (), "f4")
                self._row("chunk_seq", steps, (), "i4")
                self._row("chunk_index", steps, (), "i4")
            state = f.require_group(STATE)
            for key, shape in s.state.items():
                self._row(f"observation/state/{key}", state, tuple(shape), "f4", name=key)
            for cam in s.cameras:
                if cam.color:
                    g = f.require_group(f"{IMAGE}/{cam.name}")
                    g.attrs.update({"format": s.image_format, "width": cam.width,
                                    "height": cam.height})
                    self._data[cam.name] = g.create_dataset(
                        "data", (0,), "u1", maxshape=(None,), chunks=(IMAGE_DATA_CHUNK,))
                    self._row(f"observation/image/{cam.name}/index", g, (2,), "i8", name="index")
                    self._row(f"observation/image/{cam.name}/{FRAME_CRC}", g, (), "u4",
                              name=FRAME_CRC)
                else:
                    g = f.require_group(f"{TIMING}/{cam.name}")
                prefix = g.name.removeprefix(f"/{STEPS}/")
                self._row(f"{prefix}/frame_index", g, (), "i8", name="frame_index")
                self._row(f"{prefix}/capture_time", g, (), "f8", name="capture_time")
                self._row(f"{prefix}/device_time", g, (), "f8", name="device_time")
                if cam.depth_shape is not None:
                    h, w = cam.depth_shape
                    dg = f.require_group(DEPTH)
                    ds = dg.create_dataset(cam.name, (0, h, w), "u2", maxshape=(None, h, w),
                                           chunks=(1, h, w), compression="gzip",
                                           compression_opts=1, shuffle=True)
                    if cam.depth_scale is not None:
                        ds.attrs["depth_scale"] = cam.depth_scale
                    self._depth[cam.name] = ds
                    self._row(f"{DEPTH_CRC.removeprefix(STEPS + '/')}/{cam.name}",
                              f.require_group(DEPTH_CRC), (), "u4", name=cam.name)
            covers = covered_columns(self._rows)
            chunks = f.create_dataset(STEP_CHUNKS, (0, 3), "i8", maxshape=(None, 3),
                                      chunks=(ROW_CHUNK, 3))
            chunks.attrs.update({"algorithm": ALGORITHM, "covers": covers_attr(covers)})
            self._chunks, self._covers = chunks, covers
            self._committed, self._verdict, self._dropped = create_journal(f)
            f.swmr_mode = True
            if self.space_guard:
                self._f = f
                self._ensure_room(StepBatch())  # the file's own reserve, before any step
        except BaseException:
            self._f = None
            try:
                f.close()
            except Exception:
                _pin_forever(f)
            self.path.unlink(missing_ok=True)
            raise
        self._f = f
        self._last_fsync = time.monotonic()

    def _row(self, key: str, parent: h5py.Group, shape: tuple[int, ...], dtype: str,
             name: str | None = None) -> h5py.Dataset:
        chunk_rows = max(1, min(ROW_CHUNK, (1 << 20) // max(1, int(np.prod(shape or (1,))) * 8)))
        ds = parent.create_dataset(name or key, (0, *shape), dtype, maxshape=(None, *shape),
                                   chunks=(chunk_rows, *shape))
        self._rows[key] = ds
        return ds

    def append(self, batch: StepBatch) -> None:
        """Write a batch of steps (not yet committed: call :meth:`commit`).

        Raises:
            DiskFullError: the batch would not fit on the disk (or under the process's file
                size limit); nothing was written and the file is still valid.
        """
        n = len(batch)
        if n == 0 or self._f is None:
            return
        if self.space_guard:
            self._ensure_room(batch)
        t0, t1 = self.num_steps, self.num_steps + n
        # Image bytes first: rows that point into them are written after.
        for cam, rows in batch.cameras.items():
            if cam in self._data and rows.new_bytes:
                blob = np.frombuffer(b"".join(rows.new_bytes), np.uint8)
                ds, start = self._data[cam], self.data_bytes[cam]
                ds.resize((start + blob.size,))
                ds[start:start + blob.size] = blob
                self.data_bytes[cam] = start + blob.size
            if cam in self._depth:
                ds = self._depth[cam]
                ds.resize(t1, axis=0)
                for i, chunk in enumerate(rows.depth_chunks):
                    ds.id.write_direct_chunk((t0 + i, 0, 0), chunk)
        cols: dict[str, Any] = {
            "action": np.stack(batch.action), "requested_action": np.stack(batch.requested),
            "action_source": np.asarray(batch.source, np.uint8),
            "safety_flags": np.asarray(batch.safety_flags, np.uint32),
            "is_first": np.zeros(n, bool), "is_last": np.zeros(n, bool),
            "is_terminal": np.zeros(n, bool), "reward": np.zeros(n, np.float32),
            "discount": np.ones(n, np.float32),
        }
        if t0 == 0:
            cols["is_first"][0] = True
        if self.schema.with_policy:
            cols["policy_action"] = np.stack(batch.policy_action)
            cols["confidence"] = np.asarray(batch.confidence, np.float32)
            cols["policy_latency_ms"] = np.asarray(batch.policy_latency_ms, np.float32)
            cols["chunk_seq"] = np.asarray(batch.chunk_seq, np.int32)
            cols["chunk_index"] = np.asarray(batch.chunk_index, np.int32)
        for key, values in batch.state.items():
            cols[f"observation/state/{key}"] = np.stack(values)
        for cam in self.schema.cameras:
            rows = batch.cameras[cam.name]
            prefix = f"observation/image/{cam.name}" if cam.color else f"observation/timing/{cam.name}"
            if cam.color:
                cols[f"{prefix}/index"] = np.asarray(rows.index, np.int64).reshape(n, 2)
                cols[f"{prefix}/{FRAME_CRC}"] = np.asarray(rows.crc32c, np.uint32)
            if cam.depth_shape is not None:
                cols[f"{DEPTH_CRC.removeprefix(STEPS + '/')}/{cam.name}"] = \
                    np.asarray(rows.depth_crc32c, np.uint32)
            cols[f"{prefix}/frame_index"] = np.asarray(rows.frame_index, np.int64)
            cols[f"{prefix}/capture_time"] = np.asarray(rows.capture_time, np.float64)
            cols[f"{prefix}/device_time"] = np.asarray(rows.device_time, np.float64)
        cols["timestamp"] = np.asarray(batch.timestamp, np.float64)  # last: recovery's length
        for key, values in cols.items():
            ds = self._rows[key]
            cols[key] = values = np.asarray(values, ds.dtype)  # the bytes the checksum covers
            ds.resize(t1, axis=0)
            ds[t0:t1] = values
        if self._chunks is not None:  # after the rows it covers (see vla_studio.data.checksums)
            k = self._chunks.shape[0]
            self._chunks.resize(k + 1, axis=0)
            self._chunks[k] = (t0, t1, rows_crc32c(cols[c] for c in self._covers))
        self.num_steps = t1
        self.last_t = batch.timestamp[-1]

    def _ensure_room(self, batch: StepBatch) -> None:
        """HDF5 cannot recover from a failed write (closing the file then crashes the process),
        so a batch is only written when the disk and the file size limit have room for it.

        The room is taken, not just looked at: the file preallocates what the batch needs plus
        :data:`SEAL_RESERVE_BYTES` beyond its end, so another process filling the disk cannot
        take the space this episode needs to be closed and sealed."""
        n = len(batch)
        need = WRITE_MARGIN_BYTES + n * (64 + 8 * self.schema.action_dim * 3)
        for rows in batch.cameras.values():
            need += sum(len(b) for b in rows.new_bytes) + sum(len(c) for c in rows.depth_chunks)
        st = os.statvfs(self.path.parent)
        free = st.f_bavail * st.f_frsize
        if self.min_free_bytes and free - need < self.min_free_bytes:
            raise DiskFullError(errno.ENOSPC, f"only {free / 1e6:.0f} MB free on the disk "
                                f"(keeping {self.min_free_bytes / 1e6:.0f} MB free)", str(self.path))
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        size = self.path.stat().st_size if self.path.exists() else 0
        if limit != resource.RLIM_INFINITY and size + need > limit:
            raise DiskFullError(errno.EFBIG, f"the file would exceed this process's file size "
                                f"limit ({limit / 1e6:.0f} MB, ulimit -f)", str(self.path))
        if self._f is None:
            if free < need + SEAL_RESERVE_BYTES:
                raise DiskFullError(errno.ENOSPC, f"only {free / 1e6:.1f} MB free on the disk",
                                    str(self.path))
            return
        if self._can_preallocate:
            try:
                preallocate(self._f.id.get_vfd_handle(), size, size + need + SEAL_RESERVE_BYTES)
                return
            except NoPreallocation as exc:  # e.g. a network filesystem: check free space only
                log.info("%s cannot preallocate (%s); checking free space instead",
                         self.path.parent, exc)
                self._can_preallocate = False
            except OSError as exc:
                raise DiskFullError(exc.errno, f"the disk is full ({free / 1e6:.1f} MB free)",
                                    str(self.path)) from None
        if free < need + SEAL_RESERVE_BYTES:
            raise DiskFullError(errno.ENOSPC, f"only {free / 1e6:.1f} MB free on the disk",
                                str(self.path))

    def commit(self, force_fsync: bool = False) -> None:
        """Make every appended step durable against a crash of this process (and, once per
        ``fsync_interval_s``, against a power cut)."""
        if self._f is None or self._committed is None:
            return
        self._f.flush()
        # The count goes out right after the data it covers (a kill loses nothing flushed), and
        # before the fsync, which can take long on a busy disk and only matters for power cuts.
        self._committed[0] = self.num_steps
        self._committed.flush()
        self.committed_steps = self.num_steps
        self.committed_last_t = self.last_t
        now = time.monotonic()
        if force_fsync or now - self._last_fsync >= self.fsync_interval_s:
            self._fsync()
            self._last_fsync = now

    def commit_verdict(self, success: int, source: str) -> None:
        """Write the episode's verdict so far to the journal, durable against a crash of this
        process at once (recovery restores it)."""
        if self._f is None or self._verdict is None or (success, source) == self.verdict:
            return
        self._verdict[:] = np.array([success, source_code(source)], np.int8)
        self._verdict.flush()
        self.verdict = (success, source)

    def add_drops(self, rows: list[tuple[int, int, float, float]]) -> None:
        """Journal steps the recorder never got: ``(before_step, count, t_from, t_to)`` rows,
        committed with the next :meth:`commit`."""
        if self._f is None or self._dropped is None or not rows:
            return
        n = self._dropped.shape[0]
        self._dropped.resize(n + len(rows), axis=0)
        self._dropped[n:] = np.asarray(rows, np.float64).reshape(-1, 4)

    def _fsync(self) -> None:
        assert self._f is not None
        try:
            fd = self._f.id.get_vfd_handle()
            os.fsync(fd)
        except (OSError, ValueError, TypeError) as exc:  # a driver without a plain fd
            log.debug("fsync of %s skipped: %s", self.path, exc)

    def has_room(self) -> bool:
        """Whether the file can still be closed cleanly: the file size limit allows it and its
        reserve, or space taken for it now, holds what closing writes."""
        try:
            size = self.path.stat().st_size
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if limit != resource.RLIM_INFINITY and size + CLOSE_ROOM_BYTES > limit:
                return False
            if bytes_beyond_end(self.path) >= CLOSE_ROOM_BYTES:
                return True
            if self._f is not None and self._can_preallocate:
                try:  # take it now, before another writer on the disk does
                    preallocate(self._f.id.get_vfd_handle(), size, size + CLOSE_ROOM_BYTES)
                    return True
                except NoPreallocation:
                    pass
            st = os.statvfs(self.path.parent)
            return st.f_bavail * st.f_frsize >= CLOSE_ROOM_BYTES
        except OSError:
            return False

    def abandon(self) -> None:
        """Give up on a file HDF5 could not write, without closing it (closing without room
        would damage it and crash the process). The file stays as of its last commit; recovery
        repairs it once this process has exited."""
        f, self._f = self._f, None
        if f is None:
            return
        _pin_forever(f, *self._rows.values(), *self._data.values(), *self._depth.values(),
                     self._committed, self._chunks, self._verdict, self._dropped)
        self._rows.clear()
        self._data.clear()
        self._depth.clear()
        self._committed = self._chunks = self._verdict = self._dropped = None

    def close(self) -> None:
        """Close the file cleanly (the data stays as committed). Safe to call twice.

        When HDF5 cannot close the file (a write failed and the disk is still full), the handle
        is parked for the rest of the process (see ``_UNCLOSABLE``) and the error re-raised.
        """
        f, self._f = self._f, None
        if f is None:
            return
        handles = [f, *self._rows.values(), *self._data.values(), *self._depth.values(),
                   self._committed, self._chunks, self._verdict, self._dropped]
        self._rows.clear()
        self._data.clear()
        self._depth.clear()
        self._committed = self._chunks = self._verdict = self._dropped = None
        try:
            f.close()
        except Exception:
            _pin_forever(*handles)
            raise


def seal_episode(path: Path, num_steps: int, attrs: Mapping[str, Any], success: int) -> None:
    """Finish an episode file in place: cut every step dataset to ``num_steps``, mark the first
    and last steps, set the reward, write ``attrs``, replace the journal by the ``drops`` table
    (and the ``dropped_steps`` attribute) and give the unused disk reserve back.

    ``is_terminal`` is True on the last step of a success only: an episode that ended otherwise
    (time limit, operator stop, a crash) is truncated, not terminated (RLDS semantics).

    Used when an episode is saved and when an interrupted one is recovered. The file must not be
    open for writing anywhere (the recording handle closed, or its flags cleared after a crash).
    It writes only a few KiB, which the file's own reserve holds when the disk is full.
    """
    with h5py.File(path, "r+") as f:
        t = int(num_steps)
        steps = f[STEPS]
        datasets: list[h5py.Dataset] = []
        steps.visititems(lambda name, obj: datasets.append(obj)
                         if isinstance(obj, h5py.Dataset) and not name.endswith("/data") else None)
        for ds in datasets:
            if ds.shape and ds.shape[0] != t:
                ds.resize(t, axis=0)
        images = f.get(IMAGE)
        if images is not None:
            for g in images.values():
                idx = g["index"][:t]
                end = int((idx[:, 0] + idx[:, 1]).max()) if t else 0
                if g["data"].shape[0] != end:
                    g["data"].resize((end,))
        if t:
            flags = np.zeros(t, bool)
            flags[0] = True
            steps["is_first"][:] = flags
            flags[0] = False
            flags[-1] = True
            steps["is_last"][:] = flags
            steps["is_terminal"][:] = flags if success == SUCCESS_SUCCESS else np.zeros(t, bool)
            reward = np.zeros(t, np.float32)
            if success == SUCCESS_SUCCESS:
                reward[-1] = 1.0
            steps["reward"][:] = reward
        final = dict(attrs)
        status = final.pop("status", None)
        for key, value in final.items():
            f.attrs[key] = encode_attr(value)
        f.attrs["success"] = np.int8(success)
        f.attrs["num_steps"] = t
        if t:
            ts = steps["timestamp"]
            first, last = float(ts[0]), float(ts[t - 1])
            ts.attrs["t0_unix"] = float(f.attrs.get("start_time_unix", 0.0)) + \
                (first - float(f.attrs.get("start_time_monotonic", first)))
            f.attrs["duration_s"] = last - first
        else:
            f.attrs["duration_s"] = 0.0
        f.attrs["dropped_steps"] = seal_journal(f, t)
        if status is not None:  # last: a file marked finished is finished
            f.attrs["status"] = status
    release_preallocation(path)
    fsync_path(path)


def set_success(path: Path, success: int, source: str = "operator") -> None:
    """Record a verdict given after a saved episode was sealed (-1/0/1, and who gave it).

    The sealed file is not touched: the verdict is an undoable edit in the episode's
    annotations sidecar, which every reader merges (the final reward follows it). This works
    while another process has the episode open.
    """
    write_annotations(path, {"success": success_to_bool(success)}, source=source)


def fsync_path(path: Path) -> None:
    """fsync a file (or directory) by path; errors are logged, never raised."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        log.warning("cannot open %s to fsync it: %s", path, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("fsync of %s failed: %s", path, exc)
    finally:
        os.close(fd)
