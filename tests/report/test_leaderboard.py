"""The leaderboard from three stored runs (three models, one dataset) plus one on other data."""

import json

import pytest

from sysnoise import cli
from sysnoise.errors import UserInputError
from sysnoise.report import leaderboard

from .conftest import build_run


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three models on the same data, their reference accuracy moved by hand to 80, 90 and 70."""
    folders = []
    for model, accuracy in (("net-a", 80.0), ("net-b", 90.0), ("net-c", 70.0)):
        folder = tmp_path_factory.mktemp(model)
        results = build_run(folder, model=model, deploy=False, figures=False, reports=False)
        results["reference"]["top1"] = accuracy
        if model == "net-c":  # a run measured without stepwise combination
            del results["stepwise"]
        (folder / "results.json").write_text(json.dumps(results))
        folders.append(folder)
    return folders


def test_three_runs_make_one_table_best_model_first(three_runs, tmp_path):
    conn = leaderboard.connect(tmp_path / "board.sqlite")
    for folder in three_runs:
        leaderboard.add(conn, json.loads((folder / "results.json").read_text()), str(folder))
    (board,) = leaderboard.boards(conn)
    headers, rows, places = leaderboard.table(board)
    assert headers == ["model", "reference top-1", "decoder", "resize", "precision", "ceil-mode", "combined"]
    assert places == 0  # 20 labeled samples
    assert [row[:2] for row in rows] == [["net-b", "90"], ["net-a", "80"], ["net-c", "70"]]
    assert rows[0][2:] == ["0", "12 ± 25 (max 30)", "5", "n/a", "35*"]
    assert rows[2][-1] == ""  # no stepwise run for net-c: blank, not zero


def test_a_rerun_replaces_its_row_and_the_json_is_kept_verbatim(three_runs, tmp_path):
    conn = leaderboard.connect(tmp_path / "board.sqlite")
    original = json.loads((three_runs[0] / "results.json").read_text())
    leaderboard.add(conn, original)
    rerun = {**original, "created": "2030-01-01T00:00:00+00:00"}
    leaderboard.add(conn, rerun)
    stored = [json.loads(text) for (text,) in conn.execute("SELECT results FROM runs")]
    assert stored == [rerun]


def test_runs_on_other_data_get_their_own_board(three_runs, tmp_path):
    conn = leaderboard.connect(tmp_path / "board.sqlite")
    for folder in three_runs:
        leaderboard.add(conn, json.loads((folder / "results.json").read_text()))
    other = json.loads((three_runs[0] / "results.json").read_text())
    other["dataset"] = {**other["dataset"], "samples_sha256": "f" * 64, "path": "/data/other-set"}
    leaderboard.add(conn, other)
    boards = leaderboard.boards(conn)
    assert sorted(len(b.runs) for b in boards) == [1, 3]
    assert [b.name for b in leaderboard.boards(conn, "other-set")] == ["other-set"]
    assert len(leaderboard.boards(conn, "f" * 8)[0].runs) == 1


def test_leaderboard_command_writes_markdown_and_html(three_runs, tmp_path, capsys):
    db = tmp_path / "lb" / "runs.sqlite"
    assert cli.main(["leaderboard", *map(str, three_runs), "--db", str(db)]) == 0
    markdown = (db.parent / "leaderboard.md").read_text()
    assert "| net-b | 90 | 0 | 12 ± 25 (max 30) | 5 | n/a | 35* |" in markdown
    page = (db.parent / "leaderboard.html").read_text()
    assert page.index("net-b") < page.index("net-a") < page.index("net-c")
    assert "net-b" in capsys.readouterr().out
    # later calls read the stored runs: nothing to add, same table
    assert cli.main(["leaderboard", "--db", str(db), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "leaderboard.md").read_text() == markdown


def test_an_empty_database_says_how_to_fill_it(tmp_path, capsys):
    assert cli.main(["leaderboard", "--db", str(tmp_path / "empty.sqlite")]) == 2
    assert "no runs stored" in capsys.readouterr().err


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(UserInputError, match="bad.sqlite"):
        leaderboard.connect(bad)
