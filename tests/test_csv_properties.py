"Property tests of the CSV round trip: any ids and column names come back exactly from to_csv/from_csv, or are refused clearly (issue 19)."
import math

import pytest
import torch

from paramfittorchdemo import Observations

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])

# names as people write them: spaces around, commas, quotes, '#', line breaks, other scripts, emoji; NUL and lone surrogates too
SPECIAL = st.sampled_from([" ", "  ", ",", '"', "#", "\n", "\r", "\r\n", "\t", ";", ":", "\ufeff", "é", "ß", "日本", "🙂",
                           "\x00", "\ud800"])
TEXT = st.lists(st.one_of(SPECIAL, st.text(min_size=1, max_size=3)), min_size=1, max_size=4).map("".join)


def writable(s: str) -> bool:
    "Whether a CSV file in UTF-8 can hold the text."
    return "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


@st.composite
def observations(draw, sep: str = ":"):
    "Observations with arbitrary (distinct, non-blank) ids and column names, on their own time grids, with missing values."
    n_ids = draw(st.integers(1, 3))
    ids = draw(st.lists(TEXT.filter(lambda s: s.strip()), min_size=n_ids, max_size=n_ids, unique=True))
    n_cols = draw(st.integers(1, 2))
    cols = draw(st.lists(TEXT.filter(lambda s: s.strip() and sep not in s), min_size=n_cols, max_size=n_cols, unique=True))
    times, values = [], []
    for _ in ids:
        T = draw(st.integers(1, 4))
        t = sorted(draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=T, max_size=T, unique=True)))
        y = torch.tensor(draw(st.lists(st.lists(st.floats(-1e9, 1e9, allow_nan=False, width=64), min_size=n_cols, max_size=n_cols),
                                       min_size=T, max_size=T)), dtype=torch.float64)
        if n_cols > 1:  # a missing value in some rows, never a whole row (the wide format cannot keep an empty row)
            y[draw(st.integers(0, T - 1)), draw(st.integers(0, n_cols - 1))] = math.nan
        times.append(torch.tensor(t, dtype=torch.float64)); values.append(y)
    return Observations(times, values, ids=ids, columns=cols)


def same(a: Observations, b: Observations):
    assert a.ids == b.ids and a.columns == b.columns
    for ta, tb, ya, yb in zip(a.times, b.times, a.values, b.values):
        assert torch.equal(ta, tb)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0, equal_nan=True)


@FAST
@given(obs=observations(), fmt=st.sampled_from(["long", "wide"]), comment=st.one_of(st.none(), TEXT))
def test_any_ids_and_columns_come_back_exactly(tmp_path, obs, fmt, comment):
    "Before: ids with spaces around them came back stripped, and a header starting with '#' was skipped as a comment."
    path = tmp_path/"o.csv"
    names = obs.ids + obs.columns + ([comment] if comment is not None else [])
    if not all(writable(s) for s in names):
        with pytest.raises(ValueError, match=r"Observations.to_csv cannot write the (id|column name|comment) .*(NUL|UTF-8).*rename it"):
            obs.to_csv(path, format=fmt, comment=comment)
        return
    obs.to_csv(path, format=fmt, comment=comment)
    same(obs, Observations.from_csv(path, format=fmt))


@FAST
@given(obs=observations(), id_col=TEXT, time_col=TEXT)
def test_any_legal_id_and_time_column_names_come_back(tmp_path, obs, id_col, time_col):
    "Before: to_csv(id_col='#id') wrote a file whose header from_csv skipped as a comment."
    path = tmp_path/"o.csv"
    try: obs.to_csv(path, id_col=id_col, time_col=time_col)
    except ValueError as e:  # refused, with what was wrong
        header = [id_col, time_col] + obs.columns
        assert (not id_col.strip() and "id_col as a column name that is not blank" in str(e)
                or not time_col.strip() and "time_col as a column name that is not blank" in str(e)
                or id_col == time_col and "two different columns" in str(e)
                or len(set(header)) < len(header) and "column names" in str(e) and "twice" in str(e)
                or not all(writable(s) for s in header + obs.ids) and "cannot write" in str(e)), str(e)
        return
    same(obs, Observations.from_csv(path, id_col=id_col, time_col=time_col))


@FAST
@given(obs=observations(sep="|"), time_col=TEXT)
def test_the_wide_format_with_another_separator(tmp_path, obs, time_col):
    path = tmp_path/"w.csv"
    try: obs.to_csv(path, format="wide", time_col=time_col, sep="|")
    except ValueError as e:
        assert "time_col" in str(e) or "twice" in str(e) or "cannot write" in str(e), str(e)
        return
    same(obs, Observations.from_csv(path, format="wide", time_col=time_col, sep="|"))


@FAST
@given(bad=st.one_of(st.integers(), st.floats(), st.none(), st.lists(st.text(max_size=2), max_size=2), st.binary(max_size=3)),
       arg=st.sampled_from(["id_col", "time_col", "sep"]), fmt=st.sampled_from(["long", "wide"]))
def test_names_that_are_no_strings_are_refused_both_ways(tmp_path, bad, arg, fmt):
    obs = Observations([torch.tensor([0.0, 1.0])], [torch.ones(2, 1)], ids=["a"], columns=["x"])
    with pytest.raises(TypeError, match=f"to_csv needs {arg} as a string"): obs.to_csv(tmp_path/"o.csv", format=fmt, **{arg: bad})
    obs.to_csv(tmp_path/"o.csv", format=fmt)
    with pytest.raises(TypeError, match=f"from_csv needs {arg} as a string"):
        Observations.from_csv(tmp_path/"o.csv", format=fmt, **{arg: bad})


def test_blank_names_equal_names_and_an_empty_separator_are_refused(tmp_path):
    obs = Observations([torch.tensor([0.0, 1.0])], [torch.ones(2, 1)], ids=["a"], columns=["x"])
    with pytest.raises(ValueError, match="id_col as a column name that is not blank, got ' '"): obs.to_csv(tmp_path/"o.csv", id_col=" ")
    with pytest.raises(ValueError, match="two different columns, got 't' for both"): obs.to_csv(tmp_path/"o.csv", id_col="t", time_col="t")
    with pytest.raises(ValueError, match="sep as a non-empty string"): obs.to_csv(tmp_path/"o.csv", format="wide", sep="")
    obs.to_csv(tmp_path/"o.csv")
    with pytest.raises(ValueError, match="two different columns"): Observations.from_csv(tmp_path/"o.csv", id_col="time")
    with pytest.raises(ValueError, match="time_col as a column name that is not blank"):
        Observations.from_csv(tmp_path/"o.csv", time_col="")


def test_the_two_reported_cases(tmp_path):
    "Ids with spaces around them, and an id column named '#id'."
    obs = Observations([torch.tensor([0.0, 1.0])]*2, [torch.ones(2, 1)]*2, ids=[" a", "b "], columns=["x"])
    obs.to_csv(tmp_path/"o.csv", id_col="#id")
    assert (tmp_path/"o.csv").read_text().splitlines()[:2] == ['"#id",time,x', '" a",0.0,1.0']
    assert Observations.from_csv(tmp_path/"o.csv", id_col="#id").ids == [" a", "b "]


def test_hand_written_files_are_still_trimmed(tmp_path):
    "Spaces around unquoted cells (a file typed with ', ') are dropped, as before; quoted cells are kept exactly."
    (tmp_path/"h.csv").write_text('id, time, x\n a , 0, 1\n" b", 1, 2\n')
    assert Observations.from_csv(tmp_path/"h.csv").ids == ["a", " b"]
    (tmp_path/"w.csv").write_text('time, A : x," B :x"\n0, 1, 2\n')  # a quote opens a quoted cell right after the comma
    assert Observations.from_csv(tmp_path/"w.csv", format="wide").ids == ["A", " B "]
