"""emu.workloads.trace: streamed page-granular trace readers (docs/workloads.md, "Traces";
formats as the design notes' peers document gives them, §1.1 and §4)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from emu.workloads.trace import (
    DATA_DIR,
    TraceError,
    detect_format,
    open_trace,
    parse_spec,
    read_csv,
    read_lackey,
    read_msr,
    read_oracle,
    read_txt,
)

ORACLE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


def collect(chunks: object) -> tuple[list[int], list[bool]]:
    v: list[int] = []
    w: list[bool] = []
    for a, b in chunks:  # type: ignore[attr-defined]
        assert a.dtype == np.uint64 and b.dtype == np.bool_ and len(a) == len(b)
        v += a.tolist()
        w += b.tolist()
    return v, w


LACKEY = (
    "==4242== Lackey, an example Valgrind tool\n"
    "==4242== \n"
    "I  0401ab70,3\n"
    " L 7ff0000ec8,8\n"
    " S 1fff000778,8\n"
    " M 0401b770,4\n"
    "\n"
    "I  04222ffe,5\n"  # crosses into the next page
    " L DEADBEEF,1\n"
    "==4242== Exit code:       0\n"
)
LACKEY_PAGES = [0x401A000, 0x7FF0000000, 0x1FFF000000, 0x401B000, 0x4222000, 0x4223000,
                0xDEADB000]
LACKEY_WRITES = [False, False, True, True, False, False, False]


@pytest.mark.parametrize("name", ["t.lackey", "t.lackey.gz"])
def test_lackey_reads_I_L_as_reads_S_M_as_writes_and_splits_page_crossings(
        tmp_path: Path, name: str) -> None:
    # peers.md §4: "M and S set the modify bit, I/L only the reference bit. Lines starting
    # ==pid== are Valgrind chatter to skip"
    path = tmp_path / name
    data = LACKEY.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert collect(read_lackey(path, chunk=3)) == (LACKEY_PAGES, LACKEY_WRITES)
    v, _ = collect(read_lackey(path, instructions=False))
    assert v == [0x7FF0000000, 0x1FFF000000, 0x401B000, 0xDEADB000]


def test_lackey_accepts_crlf_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "crlf.out"
    path.write_bytes(LACKEY.replace("\n", "\r\n").encode().rstrip(b"\r\n"))
    assert collect(read_lackey(path)) == (LACKEY_PAGES, LACKEY_WRITES)


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (" X 0401ab70,3", "a lackey record"),
        ("I 0401ab70,3", "a lackey record"),
        (" L 0401zb70,3", "ADDR,SIZE"),
        (" L 0401ab70", "ADDR,SIZE"),
        (" L 0401ab70,", "ADDR,SIZE"),
        (" L 0401ab70,9000", "SIZE 1-4096"),
        (" L 10401ab70ab70ab70,8", "1-16 hex digits"),
    ],
)
def test_lackey_bad_line_names_file_line_and_expectation(tmp_path: Path, line: str,
                                                         what: str) -> None:
    path = tmp_path / "bad.lackey"
    path.write_text(LACKEY + line + "\nI  0401ab70,3\n = bad too\n")
    with pytest.raises(TraceError) as e:
        collect(read_lackey(path))
    assert f"{path}:11: expected" in str(e.value) and what in str(e.value)
    assert repr(line) in str(e.value)


def test_shipped_lackey_traces_have_the_recorded_counts() -> None:
    # counted independently with awk on the uncompressed recordings
    for name, records, writes, pages in (("kvtouch.lackey.gz", 2008446, 53207, 1605),
                                         ("ls.lackey.gz", 774476, 61925, 268)):
        n = nw = 0
        seen: set[int] = set()
        for v, w in open_trace(DATA_DIR / name, chunk=1 << 16):
            n += len(v)
            nw += int(w.sum())
            seen.update(np.unique(v).tolist())
        assert (n, nw, len(seen)) == (records, writes, pages)


def test_lackey_streams_a_million_lines_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.lackey"
    addrs = (np.arange(1_000_000, dtype=np.uint64) * np.uint64(4104)) % np.uint64(1 << 36)
    kinds = np.array(["I  ", " L ", " S ", " M "])[np.arange(1_000_000) % 4]
    lines = np.char.add(np.char.add(kinds, np.char.mod("%010x", addrs)), ",8")
    path.write_text("\n".join(lines.tolist()) + "\n")
    assert path.stat().st_size > 15_000_000
    tracemalloc.start()
    n = nw = 0
    for v, w in read_lackey(path, chunk=4096):
        assert len(v) <= 4096
        n += len(v)
        nw += int(w.sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 1_000_000 + int(((addrs % np.uint64(4096)) > np.uint64(4088)).sum())
    assert nw == 500_000 + int(((addrs[2::4] % np.uint64(4096)) > np.uint64(4088)).sum()) + int(
        ((addrs[3::4] % np.uint64(4096)) > np.uint64(4088)).sum())
    assert peak < 8_000_000, f"peak {peak} bytes: not streamed"


def _oracle(path: Path, ids: list[int], sizes: list[int] | None = None) -> None:
    rec = np.zeros(len(ids), ORACLE)
    rec["id"] = ids
    rec["size"] = sizes or [4096] * len(ids)
    rec["next"] = -1
    path.write_bytes(rec.tobytes())


def test_oracle_general_maps_obj_id_to_page_and_reads_only(tmp_path: Path) -> None:
    path = tmp_path / "t.oracleGeneral.bin"
    _oracle(path, [0, 5, 5, 1 << 35], [100, 9000, 1, 4096])
    assert collect(read_oracle(path, chunk=2)) == ([0, 5 << 12, 5 << 12, 1 << 47], [False] * 4)
    v, _ = collect(read_oracle(path, span=True))  # 9000 bytes from page 5: pages 5, 6, 7
    assert v == [0, 5 << 12, 6 << 12, 7 << 12, 5 << 12, 1 << 47]


def test_oracle_errors_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    _oracle(path, [1, 2, 1 << 36])
    with pytest.raises(TraceError, match=rf"{path}: record 2: expected obj_id"):
        collect(read_oracle(path))
    _oracle(path, [1, 2, 3])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(TraceError, match=rf"{path}: record 2: expected a 24-byte"):
        collect(read_oracle(path))


def test_shipped_synthetic_oracle_sample_reads() -> None:
    v, w = collect(open_trace(DATA_DIR / "synthetic.oracleGeneral.bin"))
    assert len(v) == 20_000 and not any(w)
    assert min(v) >= 1000 << 12 and len(set(v)) <= 2000


def test_csv_with_a_header_finds_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("time,obj_id,obj_size,op\n1,7,4096,read\n2,8,8192,WRITE\n\n3,9,1,set\n")
    assert collect(read_csv(path)) == ([7 << 12, 8 << 12, 9 << 12], [False, True, True])
    v, _ = collect(read_csv(path, span=True))
    assert v == [7 << 12, 8 << 12, 9 << 12, 9 << 12]


def test_csv_lbn_column_counts_512_byte_sectors_and_hex_scsi_opcodes(tmp_path: Path) -> None:
    # peers.md §1.1: cloudPhysicsIO.csv "op is hex SCSI opcode (2a = WRITE(10)) ... lbn =
    # block number (512 B sectors assumed)"
    path = tmp_path / "cp.csv"
    path.write_text("version,time,op,size,lbn\n1,0,28,4096,16\n1,0,2a,4096,17\n")
    assert collect(read_csv(path)) == ([2 << 12, 2 << 12], [False, True])


def test_csv_without_header_is_time_id_size_op(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("1,7,4096,w\n2,8,4096,r\n")
    assert collect(read_csv(path)) == ([7 << 12, 8 << 12], [True, False])


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("time,obj_id\n1,7\n2,8,9\n")
    with pytest.raises(TraceError, match=rf"{path}:3: expected 2 comma-separated fields"):
        collect(read_csv(path))
    path.write_text("time,obj_id\n1,7\n2,x8\n")
    with pytest.raises(TraceError, match=rf"{path}:3: expected a decimal id in column 2"):
        collect(read_csv(path))
    path.write_text("time,name\n1,7\n")
    with pytest.raises(TraceError, match=rf"{path}:1: expected a header naming an id column"):
        collect(read_csv(path))


def test_txt_is_one_page_number_per_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("42932745\n\n0\n7\n")
    assert collect(read_txt(path, chunk=1)) == ([42932745 << 12, 0, 7 << 12], [False] * 3)
    path.write_text("1\n2\n3 4\n")
    with pytest.raises(TraceError, match=rf"{path}:3: expected one obj_id per line"):
        collect(read_txt(path))


MSR = ("Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime\n"
       "128166372003061629,hm,1,Read,7014609920,24576,41286\n"
       "128166372016382155,hm,1,Write,1317441536,8192,1963\n"
       "128166372026382245,hm,1,Write,4095,2,100\n")


def test_msr_splits_each_io_into_its_4k_pages(tmp_path: Path) -> None:
    # peers.md §4: "page = Offset // 4096 ... (Offset+Size-1)//4096 (split multi-page I/Os);
    # Write -> dirty"
    path = tmp_path / "hm_0.csv"
    path.write_text(MSR)
    v, w = collect(read_msr(path, chunk=4))
    assert v == [7014608896 + i * 4096 for i in range(7)] + [1317441536, 1317441536 + 4096, 0,
                                                              4096]
    assert w == [False] * 7 + [True] * 4
    assert detect_format(path) == "msr"


def test_msr_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "hm_0.csv"
    path.write_text(MSR + "128166372026382245,hm,1,Flush,0,2,100\n")
    with pytest.raises(TraceError, match=rf"{path}:5: expected Type Read or Write"):
        collect(read_msr(path))
    path.write_text(MSR + "128166372026382245,hm,1,Read,0,100\n")
    with pytest.raises(TraceError, match=rf"{path}:5: expected 7 comma-separated fields"):
        collect(read_msr(path))
    path.write_text(MSR + "128166372026382245,hm,1,Read,-5,100,1\n")
    with pytest.raises(TraceError, match=rf"{path}:5: expected decimal Offset and Size"):
        collect(read_msr(path))


def test_shipped_synthetic_msr_sample_reads() -> None:
    v, w = collect(open_trace(f"msr:{DATA_DIR / 'synthetic.msr.csv'}"))
    assert len(v) > 2000 and 0.1 < np.mean(w) < 0.6 and max(v) < 64 << 20


def test_spec_prefix_and_detection_choose_the_reader(tmp_path: Path) -> None:
    assert parse_spec("lackey:trace.out.gz") == ("lackey", Path("trace.out.gz"))
    assert parse_spec("oracleGeneral:/x/y.zst") == ("oracle", Path("/x/y.zst"))
    assert parse_spec("weird:name") == (None, Path("weird:name"))
    assert detect_format(Path("a.oracleGeneral.zst")) == "oracle"
    assert detect_format(Path("ids.txt.gz")) == "txt"
    path = tmp_path / "trace.out"
    path.write_text(LACKEY)
    assert detect_format(path) == "lackey"
    assert collect(open_trace(f"lackey:{path}"))[0] == LACKEY_PAGES
    (tmp_path / "x.dat").write_text("hello\n")
    with pytest.raises(TraceError, match="cannot tell the trace format"):
        open_trace(tmp_path / "x.dat")
    with pytest.raises(TraceError, match="no such trace file"):
        open_trace(tmp_path / "missing.csv")
    with pytest.raises(TraceError, match="unknown trace format 'pin'"):
        open_trace(path, fmt="pin")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_zst_traces_are_decompressed_on_the_fly(tmp_path: Path) -> None:
    raw = tmp_path / "t.oracleGeneral.bin"
    _oracle(raw, list(range(100)))
    subprocess.run(["zstd", "-q", str(raw)], check=True)
    v, _ = collect(open_trace(tmp_path / "t.oracleGeneral.bin.zst", chunk=7))
    assert v == [i << 12 for i in range(100)]


def test_chunks_are_exactly_the_requested_size_but_the_last(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(f"{i}\n" for i in range(10_000)))
    sizes = [len(v) for v, _ in read_txt(path, chunk=999)]
    assert sizes == [999] * 10 + [10]


def test_zst_is_read_with_the_zstandard_package_across_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 15: no zstd program needed; a file of several frames reads whole."""
    import zstandard

    monkeypatch.setenv("PATH", "")  # no zstd program to be found

    text = LACKEY.encode() * 3000
    half = len(text) // 2
    z = zstandard.ZstdCompressor()
    (tmp_path / "t.lackey.zst").write_bytes(z.compress(text[:half]) + z.compress(text[half:]))
    (tmp_path / "t.lackey").write_bytes(text)
    assert collect(open_trace(tmp_path / "t.lackey.zst")) == collect(open_trace(tmp_path / "t.lackey"))


def _damaged(tmp_path: Path, name: str) -> Path:
    """A copy of a compressed lackey trace, cut in half ("cut") or with bytes overwritten."""
    import zstandard

    text = LACKEY.encode() * 5000
    ext = name.rsplit(".", 1)[1]
    data = gzip.compress(text) if ext == "gz" else zstandard.ZstdCompressor().compress(text)
    if name.startswith("cut"):
        data = data[: len(data) // 2]
    else:
        data = data[:40] + b"\xff" * 32 + data[72:]
    path = tmp_path / f"{name.split('.')[0]}.lackey.{ext}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "what"), [
    ("cut.gz", "the gzip data is cut short"), ("bad.gz", "not readable as gzip"),
    ("cut.zst", "the zstd data is cut short"), ("bad.zst", "not readable as zstd"),
])  # fmt: skip
def test_a_cut_or_corrupt_compressed_trace_names_the_file_and_the_damage(
    tmp_path: Path, name: str, what: str
) -> None:
    path = _damaged(tmp_path, name)
    with pytest.raises(TraceError) as ei:
        collect(open_trace(path))
    assert str(ei.value).startswith(f"{path}: {what}")


def test_emu_run_refuses_a_damaged_or_empty_trace_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emu.cli import main

    (tmp_path / "empty.lackey").write_text("==1== nothing but chatter\n")
    for path, what in ((_damaged(tmp_path, "cut.gz"), "cut short"),
                       (_damaged(tmp_path, "bad.zst"), "not readable as zstd"),
                       (tmp_path / "empty.lackey", "holds no accesses")):  # fmt: skip
        rc = main(["run", "tiny", "--out", str(tmp_path / "runs"), "--quiet",
                   "--trace", f"lackey:{path}"])  # fmt: skip
        _, err = capsys.readouterr()
        assert rc == 2 and str(path) in err and what in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()
