"""The scored log of a local run: appended ranges, the join by rename, and the repair of
the log that ``--resume`` finds after a kill."""

import errno
import json
import os

import pytest

from vae_anomaly.tabular import scored_log
from vae_anomaly.tabular.scored_log import RANGE_KEY, SCORED_LOG, append, join, reconcile

HEADER = b"a,source_file,source_line\n"
ROWS = [b"1,f.csv,2\n2,f.csv,3\n", b"", b"3,f.csv,4\n"]


def logged(parts, rows=ROWS):
    """A log holding the header and ``rows``, one chunk each; the chunks' stats."""
    (parts / SCORED_LOG).write_bytes(HEADER)
    return [{RANGE_KEY: append(parts / SCORED_LOG, data)} for data in rows]


def commit(parts, stems, stats):
    for stem, chunk in zip(stems, stats, strict=True):
        (parts / f"{stem}.stats.json").write_text(json.dumps(chunk))
    return dict(zip(stems, stats, strict=True))


def test_append_gives_each_chunk_the_range_after_the_previous_one(tmp_path):
    stats = logged(tmp_path)
    assert [chunk[RANGE_KEY] for chunk in stats] == [[26, 46], [46, 46], [46, 56]]
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER + b"".join(ROWS)


def test_a_log_holding_every_chunk_in_order_becomes_the_output_without_a_copy(tmp_path):
    stats = logged(tmp_path)
    inode = (tmp_path / SCORED_LOG).stat().st_ino
    output = tmp_path / "out" / "scored.csv"
    output.parent.mkdir()
    output.write_bytes(b"an older output\n")
    join(tmp_path, ["a", "b", "c"], stats, output, HEADER)
    assert output.read_bytes() == HEADER + b"".join(ROWS)
    assert output.stat().st_ino == inode  # a hard link: the log stays for --resume
    assert (tmp_path / SCORED_LOG).exists()
    assert sorted(p.name for p in output.parent.iterdir()) == ["scored.csv"]  # no temporary


def test_writing_to_the_log_after_the_join_never_changes_the_output(tmp_path):
    """A job killed after its join and resumed with a chunk lost: the log is detached
    from the output before it is cut or appended to."""
    stats = logged(tmp_path)
    output = tmp_path / "scored.csv"
    join(tmp_path, ["a", "b", "c"], stats, output, HEADER)
    committed = commit(tmp_path, ["a", "b"], stats[:2])  # c's stats file was lost
    assert reconcile(tmp_path, committed, HEADER) == set()
    append(tmp_path / SCORED_LOG, b"7,f.csv,8\n")
    assert output.read_bytes() == HEADER + b"".join(ROWS)
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER + ROWS[0] + b"7,f.csv,8\n"


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM])  # another filesystem; no links
def test_without_a_hard_link_the_log_is_copied_to_the_output(tmp_path, monkeypatch, code):
    def no_link(source, target):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(scored_log.os, "link", no_link)
    stats = logged(tmp_path)
    output = tmp_path / "scored.csv"
    join(tmp_path, ["a", "b", "c"], stats, output, HEADER)
    assert output.read_bytes() == HEADER + b"".join(ROWS)
    assert output.stat().st_ino != (tmp_path / SCORED_LOG).stat().st_ino


def test_another_failure_to_link_is_raised_not_hidden_by_a_copy(tmp_path, monkeypatch):
    def no_space(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(scored_log.os, "link", no_space)
    stats = logged(tmp_path)
    with pytest.raises(OSError, match="No space"):
        join(tmp_path, ["a", "b", "c"], stats, tmp_path / "scored.csv", HEADER)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SCORED_LOG]


def test_chunks_in_part_files_and_in_the_log_are_joined_in_plan_order(tmp_path):
    """As after a Dask run resumed by the local engine: chunk b is a part file."""
    stats = logged(tmp_path, [ROWS[0], ROWS[2]])
    (tmp_path / "b.scored.csv").write_bytes(b"9,f.csv,9\n")
    output = tmp_path / "scored.csv"
    join(tmp_path, ["a", "b", "c"], [stats[0], {}, stats[1]], output, HEADER)
    assert output.read_bytes() == HEADER + ROWS[0] + b"9,f.csv,9\n" + ROWS[2]
    assert (tmp_path / SCORED_LOG).exists()  # copied from, not renamed


def test_a_log_with_bytes_between_ranges_is_copied_range_by_range(tmp_path):
    stats = logged(tmp_path, [ROWS[0], b"lost,chunk,1\n", ROWS[2]])
    output = tmp_path / "scored.csv"
    join(tmp_path, ["a", "c"], [stats[0], stats[2]], output, HEADER)
    assert output.read_bytes() == HEADER + ROWS[0] + ROWS[2]


def test_resume_cuts_off_the_rows_of_a_chunk_killed_while_appended(tmp_path):
    stats = logged(tmp_path)
    committed = commit(tmp_path, ["a", "b", "c"], stats)
    append(tmp_path / SCORED_LOG, b"4,f.csv,5\n5,f.cs")  # chunk d: no stats file
    assert reconcile(tmp_path, committed, HEADER) == set()
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER + b"".join(ROWS)


def test_resume_scores_again_the_chunks_whose_rows_the_log_lost(tmp_path):
    stats = logged(tmp_path)
    committed = commit(tmp_path, ["a", "b", "c", "p"], [*stats, {}])  # p: a part file
    with open(tmp_path / SCORED_LOG, "rb+") as handle:
        handle.truncate(50)  # c's rows end at 56
    assert reconcile(tmp_path, committed, HEADER) == {"c"}
    assert not (tmp_path / "c.stats.json").exists()
    assert (tmp_path / "a.stats.json").exists() and (tmp_path / "p.stats.json").exists()
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER + ROWS[0]  # cut after b


def test_resume_cuts_off_a_first_chunk_killed_while_appended(tmp_path):
    logged(tmp_path, [b"1,f.csv,2\n2,f."])  # no chunk committed
    assert reconcile(tmp_path, {}, HEADER) == set()
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER


def test_resume_without_the_log_or_with_another_header_starts_a_new_log(tmp_path):
    stats = logged(tmp_path)
    committed = commit(tmp_path, ["a", "b", "c", "p"], [*stats, {}])
    (tmp_path / SCORED_LOG).unlink()  # renamed to the output before the job was killed
    assert reconcile(tmp_path, committed, HEADER) == {"a", "b", "c"}
    assert (tmp_path / SCORED_LOG).read_bytes() == HEADER
    assert (tmp_path / "p.stats.json").exists()

    stats = logged(tmp_path)
    committed = commit(tmp_path, ["a", "b", "c"], stats)
    assert reconcile(tmp_path, committed, b"other,header\n") == {"a", "b", "c"}
    assert (tmp_path / SCORED_LOG).read_bytes() == b"other,header\n"
