"""`flowd --read FILE --workers N`: the flow cache split across processes exports what one process exports.

Both runs go to real collectors: nfcapd (its records read back with nfdump) and a UDP socket whose v5
datagrams dpkt decodes, so the sequence numbers are compared datagram by datagram. The capture has both
families, fragments, VLAN/QinQ/MPLS and damaged frames, and timeouts short enough that flows end in the
middle of the file (by timeout, by FIN/RST) as well as at the end. The same holds for a file cut in the
middle of a record, for pcapng and for gzip; and every frame is decoded by exactly one process.
"""

from __future__ import annotations

import collections
import gzip
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.capture.files import open_capture
from flowd.model.batch import FrameBatch
from flowd.runtime import batch_chunks
from flowd.runtime.batch_mode import run_batch
from flowd.runtime.batch_plan import SPLIT_MIN_BYTES, workers_for
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "mixed.pcap"
    # 150k frames: three batches of the reader, so flows end between batches as well as at the end
    write_capture(SynthSpec(packets=150_000, flows=12_000, seed=11, duration=240.0, fragment_share=0.05,
                            qinq_share=0.05, mpls_share=0.05, ipv6_share=0.25, damaged_share=0.01), path)
    return path


def read(path: Path, port: int, workers: int, status: int = 0) -> str:
    """The summary of ``flowd --read`` (and its error line, if any), the collector port taken out."""
    done = subprocess.run([sys.executable, "-m", "flowd", "--read", str(path), "--workers", str(workers),
                           "--flow-server", f"127.0.0.1:{port}", "--source-address", "127.0.0.1",
                           "--active-timeout", "60", "--inactive-timeout", "15"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == status, done.stderr
    summary = (done.stdout + done.stderr).replace(f"127.0.0.1:{port}", "SERVER")  # each run has its own port
    return "\n".join(line for line in summary.splitlines() if not line.startswith("Elapsed"))


def v5_datagrams(path: Path, workers: int, status: int = 0
                 ) -> tuple[str, list[tuple[int, int]], collections.Counter[tuple[int, ...]]]:
    """The summary, (flow_sequence, record count) of every datagram in order, and every record's fields."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        sock.bind(("127.0.0.1", 0))
        summary = read(path, sock.getsockname()[1], workers, status)
        sock.setblocking(False)
        headers: list[tuple[int, int]] = []
        records: collections.Counter[tuple[int, ...]] = collections.Counter()
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                break
            message = dpkt.netflow.Netflow5(data)
            headers.append((message.flow_sequence, message.count))
            records.update((r.src_addr, r.dst_addr, r.src_port, r.dst_port, r.ip_proto, r.tos, r.pkts_sent,
                            r.bytes_sent, r.tcp_flags, r.start_time, r.end_time, r.input_iface)
                           for r in message.data)
    return summary, headers, records


def test_sharded_export_has_the_same_records_and_sequence_numbers(capture: Path) -> None:
    summary = assert_workers_agree(capture)
    assert int(summary.split("Flows created: ")[1].split(",")[0]) > 5_000


def assert_workers_agree(path: Path, status: int = 0, counts: tuple[int, ...] = (2, 3), *,
                         datagrams: bool = True) -> str:
    """N workers give one worker's summary and records (and datagrams: sizes and sequence numbers).

    The export is paced in real time (flowd.export.outbox), so where reading is slow (gzip) which
    records share a datagram can vary from run to run, with one worker as with several: there only
    the records are compared, and the summary without its datagram counts.
    """
    def summary_of(text: str) -> str:
        return text if datagrams else "\n".join(line for line in text.splitlines()
                                                if not line.startswith("Flow server"))

    one = v5_datagrams(path, 1, status)
    for workers in counts:
        summary, headers, records = v5_datagrams(path, workers, status)
        assert summary_of(summary) == summary_of(one[0])
        if datagrams:
            assert headers == one[1], f"{workers} workers: datagram sizes or sequence numbers differ"
        assert records == one[2], f"{workers} workers: {len(records - one[2])} records differ"
    assert len(one[1]) > 20
    return one[0]


def test_a_file_cut_in_a_record_ends_every_process_after_the_same_batch(capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = capture.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4 + 5])  # the fourth batch of three workers' turns ends early
    summary = assert_workers_agree(cut, status=65)
    assert "truncated record" in summary


def test_pcapng_and_gzip_give_what_one_process_gives(capture: Path, tmp_path: Path) -> None:
    ng = tmp_path / "mixed.pcapng"
    with open(ng, "wb") as out, open_capture(str(capture)) as reader:
        out.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))  # SHB
        out.write(struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20))  # IDB: Ethernet, microseconds
        for frames in reader.batches(32768):
            for offset, caplen, wirelen, ts in zip(frames.offset, frames.caplen, frames.wirelen, frames.ts,
                                                   strict=True):
                ticks = round(float(ts) * 1e6)
                padded = -(-int(caplen) // 4) * 4
                out.write(struct.pack("<IIIIIII", 6, 32 + padded, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                      caplen, wirelen))
                out.write(bytes(frames.buf[offset:offset + caplen]).ljust(padded, b"\0"))
                out.write(struct.pack("<I", 32 + padded))
    assert "Packets read: 150000," in assert_workers_agree(ng, counts=(2,))
    zipped = tmp_path / "mixed.pcap.gz"
    zipped.write_bytes(gzip.compress(capture.read_bytes(), compresslevel=1))
    assert_workers_agree(zipped, counts=(2,), datagrams=False)


SMALL_PIPES = """
import fcntl, sys
from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.runtime import batch_shards
from flowd.runtime.batch_mode import run_batch

made = batch_shards.Shards.__init__

def small_pipes(self, *args, **kwargs):  # results pipes of one page: nearly every batch's result outgrows it
    made(self, *args, **kwargs)
    for conn in self._conns:
        fcntl.fcntl(conn.fileno(), 1031, 4096)  # F_SETPIPE_SZ

batch_shards.Shards.__init__ = small_pipes
cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", int(sys.argv[2]))], source_address="127.0.0.1",
                     active_timeout=60, inactive_timeout=15)
sys.exit(run_batch(sys.argv[1], cfg, workers=int(sys.argv[3]), batch_size=2000))
"""


def test_results_larger_than_their_pipe_do_not_stall_the_shards(capture: Path) -> None:
    """A shard's result for a batch (the flows it ended) may exceed the pipe to the main process. The shard
    must not wait on that pipe while the main process waits for the next batch, whose slot the shard gives
    back only after sending: both would wait for ever. Pipes of one page and batches of 2,000 frames make
    nearly every result larger than its pipe; the run ends, with the summary of one process."""
    summaries = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        for workers in (1, 2):
            done = subprocess.run([sys.executable, "-c", SMALL_PIPES, str(capture), str(sink.getsockname()[1]),
                                   str(workers)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            summaries.append([line for line in done.stdout.splitlines() if not line.startswith("Elapsed")])
    assert summaries[0] == summaries[1] and "Flows created: 0" not in "\n".join(summaries[0])


KILLED_MAIN = """
import multiprocessing, signal, sys
from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.runtime import batch_shards
from flowd.runtime.batch_mode import run_batch

steps = batch_shards.Shards.steps

def first_step_then_wait(self):  # the main process stops after its first batch, its shard waiting on it
    for step in steps(self):
        print(*(p.pid for p in multiprocessing.active_children()), flush=True)
        signal.pause()
        yield step

batch_shards.Shards.steps = first_step_then_wait
cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", 9)], source_address="127.0.0.1")
run_batch(sys.argv[1], cfg, workers=2, batch_size=2000)
"""


def test_shard_processes_end_with_a_main_process_killed_outright(capture: Path) -> None:
    """kill -9 of the main process: its shard process, which would wait on it for ever, ends too."""
    with subprocess.Popen([sys.executable, "-c", KILLED_MAIN, str(capture)], cwd=REPO, stdout=subprocess.PIPE,
                          text=True) as main:
        assert main.stdout is not None
        shard = int(main.stdout.readline())
        pidfd = os.pidfd_open(shard)  # readable once the process has ended
        main.kill()
    try:
        ended, _, _ = select.select([pidfd], [], [], 30)
        if not ended:
            os.kill(shard, signal.SIGKILL)
        assert ended, "the shard process outlived the main process"
    finally:
        os.close(pidfd)


def test_every_frame_is_decoded_by_one_process(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    log = tmp_path / "decoded"
    decode = batch_chunks.decode_unselected

    def logged(frames: FrameBatch, macs: bool) -> object:  # each process appends: pid, first frame's offset, frames
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {int(frames.offset[0])} {len(frames)}\n")
        return decode(frames, macs)

    monkeypatch.setattr(batch_chunks, "decode_unselected", logged)
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", 9)], source_address="127.0.0.1")
    for workers in (2, 3):
        log.write_text("")
        run_batch(str(capture), cfg, out=open(os.devnull, "w"), workers=workers)
        rows = [tuple(int(v) for v in line.split()) for line in log.read_text().splitlines()]
        assert sum(n for _, _, n in rows) == 150_000  # every frame once
        assert len({offset for _, offset, _ in rows}) == len(rows)
        assert len({pid for pid, _, _ in rows}) == workers  # every process takes its turn, the main one too
        assert os.getpid() in {pid for pid, _, _ in rows}


@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
def test_nfcapd_reads_the_same_flows_from_one_and_two_workers(capture: Path, tmp_path: Path) -> None:
    flows = []
    for workers in (1, 2):
        with start_nfcapd(tmp_path / f"nfcapd-{workers}") as collector:
            read(capture, collector.port, workers)
            collector.wait_idle()
        flows.append(collections.Counter(
            (f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["tos"], f["packets"], f["bytes"],
             f["tcp_flags"], f["first_ms"], f["last_ms"], f["input"]) for f in collector.flows()))
    assert sum(flows[0].values()) > 5_000
    assert flows[1] == flows[0]


def test_one_process_where_shards_could_not_repeat_one_cache() -> None:
    cfg = load_config(None)
    assert workers_for("x.pcap", cfg, 4) == 4
    assert workers_for("-", cfg, 4) == 1  # standard input has one reader
    assert workers_for("x.pcap", cfg, 1) == 1
    assert workers_for("x.pcap", with_overrides(cfg, sampling_rate=10), 4) == 1  # 1-in-N counts every packet


def test_without_workers_a_small_file_is_read_by_one_process_a_large_one_by_every_cpu(tmp_path: Path) -> None:
    cfg = load_config(None)
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    small.write_bytes(b"\0" * 1024)
    with large.open("wb") as f:
        f.truncate(SPLIT_MIN_BYTES)  # sparse: the size is what counts
    assert workers_for(str(small), cfg, None) == 1
    assert workers_for(str(large), cfg, None) == len(os.sched_getaffinity(0))
    assert workers_for(str(small), cfg, 2) == 2  # asked for: honoured
