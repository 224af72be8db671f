import fnmatch
import math
import re
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from paramfittorchdemo.data import SimODEData, create_sim_dataset
from paramfittorchdemo.models import LotkaVolterra
from paramfittorchdemo.observations import Observations, load_lynx_hare

nan = float("nan")


def same(a: Observations, b: Observations, ids=True):
    "Same trajectories, time points, values (NaN where NaN) and names."
    assert len(a) == len(b) and a.columns == b.columns
    if ids: assert a.ids == b.ids
    for (ta, ya), (tb, yb) in zip(a, b):
        torch.testing.assert_close(ta, tb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0, equal_nan=True)


def write(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def ragged_obs():
    return Observations([[0.0, 1.0, 2.5], [0.5, 2.0], [1.0]],
                        [[[30, 4], [47, nan], [70, 10]], [[20, 3], [nan, 5]], [[1, nan]]],
                        ids=["A", "B", "C"], columns=["hare", "lynx"], source="field.csv")


# ---------------------------------------------------------------- the container

def test_constructor_converts_to_float64_copies():
    t = np.array([0.0, 1.0]); y = torch.ones(2, 1, dtype=torch.float32)
    o = Observations([t], [y])
    assert o.times[0].dtype == o.values[0].dtype == torch.float64
    assert o.ids == ["0"] and o.columns == ["y0"] and o.source is None and o.n_obs == 1
    t[0] = -5.0; y[0, 0] = 7.0
    assert o.times[0][0] == 0.0 and o.values[0][0, 0] == 1.0   # copies, not views


def test_len_getitem_iter_repr():
    o = ragged_obs()
    assert len(o) == 3 and o.n_obs == 2
    t, y = o[1]
    assert t.tolist() == [0.5, 2.0] and y.shape == (2, 2)
    assert o["C"][0].tolist() == [1.0] and o[-1][0].tolist() == [1.0]
    assert [len(t) for t, _ in o] == [3, 2, 1]
    assert repr(o) == ("Observations(3 trajectories, 6 time points (1-3 each), columns=['hare', 'lynx'], "
                       "3 missing values, source='field.csv')")
    with pytest.raises(IndexError, match="has 3 trajectories, got position 3"): o[3]
    with pytest.raises(KeyError, match="no trajectory 'D'"): o["D"]


def test_single_time_point_trajectory_is_allowed():
    o = Observations([[2.0]], [[[1.0, nan]]])
    assert o.t0().tolist() == [2.0]


def test_padded_ragged_grids_and_masks():
    ts, ys, mask, valid = ragged_obs().padded()
    assert ts.shape == (3, 3) and ys.shape == mask.shape == (3, 3, 2) and valid.shape == (3, 3)
    assert ts.dtype == ys.dtype == torch.float64 and mask.dtype == valid.dtype == torch.bool
    assert ts.tolist() == [[0.0, 1.0, 2.5], [0.5, 2.0, 2.0], [1.0, 1.0, 1.0]]
    assert valid.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert mask.tolist() == [[[True, True], [True, False], [True, True]],
                             [[True, True], [False, True], [False, False]],
                             [[True, False], [False, False], [False, False]]]
    assert torch.equal(mask, valid[..., None] & ~torch.isnan(ys))
    assert torch.isnan(ys[~valid]).all()
    assert ys[0, 2].tolist() == [70.0, 10.0]


def test_t0():
    t0 = ragged_obs().t0()
    assert t0.tolist() == [0.0, 0.5, 1.0] and t0.shape == (3,)


def test_subset_by_name_index_and_order():
    o = ragged_obs()
    s = o.subset(["C", 0])
    assert s.ids == ["C", "A"] and s.columns == o.columns and s.source == o.source
    assert s[1][0].tolist() == [0.0, 1.0, 2.5]
    assert o.subset("B").ids == ["B"] and o.subset(np.int64(1)).ids == ["B"]
    with pytest.raises(KeyError, match=r"ids are \['A', 'B', 'C'\]"): o.subset(["A", "Z"])
    with pytest.raises(ValueError, match="at least one"): o.subset([])
    with pytest.raises(ValueError, match="distinct ids"): o.subset(["A", "A"])


def test_until_cuts_on_absolute_time_and_keeps_first_point():
    o = ragged_obs()
    u = o.until(1.0)
    assert [t.tolist() for t in u.times] == [[0.0, 1.0], [0.5], [1.0]]
    assert torch.isnan(u.values[0][1, 1])
    assert o.until(0.1).times[1].tolist() == [0.5]            # starts after t_end: keeps its first point
    assert [len(t) for t in o.until(100).times] == [3, 2, 1]
    assert [len(t) for t in o.until(torch.tensor(2.0)).times] == [2, 2, 1]
    assert [len(t) for t in o.times] == [3, 2, 1]             # the original is untouched
    with pytest.raises(TypeError, match="t_end as a number"): o.until("1")
    with pytest.raises(ValueError, match="NaN"): o.until(nan)


def test_until_refuses_to_leave_a_trajectory_without_data():
    o = Observations([[0.0, 1.0]], [[[nan], [2.0]]], ids=["A"])
    with pytest.raises(ValueError, match=r"trajectory 'A' with no observed value: its first observation is at t=1.0"):
        o.until(0.5)


def test_from_arrays_shared_and_per_trajectory_grids():
    ys = torch.rand(3, 5, 2)
    o = Observations.from_arrays(torch.linspace(0, 1, 5), ys, ids=["a", "b", "c"], columns=["x", "v"])
    assert o.ids == ["a", "b", "c"] and all(torch.equal(t, torch.linspace(0, 1, 5).double()) for t in o.times)
    torch.testing.assert_close(torch.stack(o.values), ys.double())
    ts = torch.arange(15.0).reshape(3, 5)
    assert Observations.from_arrays(ts, ys).times[2].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert len(Observations.from_arrays(np.linspace(0, 1, 5), np.zeros((2, 5, 1)) + 1)) == 2


def test_from_sim():
    ts = torch.linspace(0, 1, 6)
    data = create_sim_dataset(LotkaVolterra(), ts, num_samples=3, initial_conditions_default=torch.tensor([1.0, 1.0]), seed=0)
    o = Observations.from_sim(data, columns=["hare", "lynx"])
    assert len(o) == 3 and o.columns == ["hare", "lynx"] and o.ids == ["0", "1", "2"]
    torch.testing.assert_close(torch.stack(o.values), data.tensors()[1].double())
    assert o.times[1].tolist() == ts.double().tolist()
    ragged = SimODEData([torch.linspace(0, 1, 3), torch.linspace(0, 2, 5)], [torch.zeros(3, 2), torch.ones(5, 2)])
    assert [len(t) for t in Observations.from_sim(ragged).times] == [3, 5]
    with pytest.raises(TypeError, match="SimODEData"): Observations.from_sim(torch.zeros(2, 3, 2))


# ---------------------------------------------------------------- CSV reading and round trips

def test_round_trip_arrays_long_csv(tmp_path):
    ys = torch.rand(2, 4, 3, dtype=torch.float64); ys[0, 1, 2] = nan; ys[1, 0, 0] = nan
    o = Observations.from_arrays(torch.tensor([0.0, 0.1, 0.25, 1 / 3]), ys, ids=["run1", "run2"], columns=["x", "y", "z"])
    o.to_csv(tmp_path / "o.csv", comment="made by a test\nsecond line")
    text = (tmp_path / "o.csv").read_text()
    assert text.startswith("# made by a test\n# second line\nid,time,x,y,z\nrun1,0.0,")
    back = Observations.from_csv(tmp_path / "o.csv")
    same(o, back)
    assert back.source == str(tmp_path / "o.csv")


def test_round_trip_handwritten_long_csv(tmp_path):
    p = write(tmp_path, "id,time,x,y\nA,0,1,2\nA,1,3,\nB,0.5,5,6\n")
    o = Observations.from_csv(p)
    same(o, Observations([[0.0, 1.0], [0.5]], [[[1, 2], [3, nan]], [[5, 6]]], ids=["A", "B"], columns=["x", "y"]))


def test_round_trip_wide_csv(tmp_path):
    o = ragged_obs()
    o.to_csv(tmp_path / "w.csv", format="wide")
    lines = (tmp_path / "w.csv").read_text().splitlines()
    assert lines[0] == "time,A:hare,A:lynx,B:hare,B:lynx,C:hare,C:lynx"
    assert lines[1] == "0.0,30.0,4.0,,,,"
    same(o, Observations.from_csv(tmp_path / "w.csv", format="wide"))


def test_wide_single_trajectory_uses_file_stem(tmp_path):
    p = write(tmp_path, "time,x,y\n0,1,2\n1,,\n2,3,NA\n", name="pendulum.csv")
    o = Observations.from_csv(p, format="wide")
    assert o.ids == ["pendulum"] and o.columns == ["x", "y"]
    assert o.times[0].tolist() == [0.0, 2.0]             # the all-missing row is dropped


def test_wide_custom_sep_and_columns(tmp_path):
    p = write(tmp_path, "t,A/x,A/y,B/x,B/y\n0,1,2,3,4\n1,5,6,,\n")
    o = Observations.from_csv(p, format="wide", time_col="t", sep="/", columns=["y"])
    assert o.ids == ["A", "B"] and o.columns == ["y"]
    assert o.values[0].tolist() == [[2.0], [6.0]] and o.times[1].tolist() == [0.0]


def test_long_without_id_column_is_one_trajectory_named_after_the_file(tmp_path):
    o = Observations.from_csv(write(tmp_path, "time,x\n0,1\n1,2\n", name="exp7.csv"))
    assert o.ids == ["exp7"] and o.columns == ["x"]


def test_long_interleaved_rows_and_column_selection(tmp_path):
    p = write(tmp_path, "time,id,x,note,y\n0,A,1,ok,2\n0,B,3,ok,4\n1,A,5,bad,6\n")
    o = Observations.from_csv(p, columns=["y", "x"])
    assert o.ids == ["A", "B"] and o.columns == ["y", "x"]
    assert o.values[0].tolist() == [[2.0, 1.0], [6.0, 5.0]]


@pytest.mark.parametrize("token", ["", "NA", "na", "Na", "NaN", "nan", "NAN", "null", "NULL", "Null", " NA "])
def test_missing_value_tokens(tmp_path, token):
    o = Observations.from_csv(write(tmp_path, f"time,x,y\n0,1,{token}\n1,2,3\n"))
    assert math.isnan(o.values[0][0, 1]) and o.values[0][1].tolist() == [2.0, 3.0]


def test_comments_spaces_blank_lines_and_bom(tmp_path):
    text = ("\ufeff# measured by hand\n#   units: days, counts\n\n"
            "  id ,  time , hare , lynx \n A , 0 , 30 , 4 \n\n A , 1.5 ,  , 6 \n,,,\n")
    o = Observations.from_csv(write(tmp_path, text))
    assert o.ids == ["A"] and o.columns == ["hare", "lynx"]
    assert o.times[0].tolist() == [0.0, 1.5]
    assert math.isnan(o.values[0][1, 0]) and o.values[0][1, 1] == 6.0


def test_quoted_cells(tmp_path):
    o = Observations.from_csv(write(tmp_path, 'id,time,x\n"site, north",0,"1.5"\n'))
    assert o.ids == ["site, north"] and o.values[0].tolist() == [[1.5]]


# ---------------------------------------------------------------- DataFrames

def test_dataframe_long_round_trip():
    pd = pytest.importorskip("pandas")
    o = ragged_obs()
    df = o.to_dataframe()
    assert list(df.columns) == ["id", "time", "hare", "lynx"] and len(df) == 6
    same(o, Observations.from_dataframe(df, source="field.csv"))
    df2 = pd.DataFrame({"traj": [1, 1, 2], "t": [0.0, 1.0, 0.0], "x": [1.0, None, 3.0]})
    o2 = Observations.from_dataframe(df2, id_col="traj", time_col="t")
    assert o2.ids == ["1", "2"] and math.isnan(o2.values[0][1, 0])


def test_dataframe_wide_round_trip():
    pytest.importorskip("pandas")
    o = ragged_obs()
    df = o.to_dataframe(format="wide")
    assert list(df.columns) == ["time", "A:hare", "A:lynx", "B:hare", "B:lynx", "C:hare", "C:lynx"]
    assert df["time"].tolist() == [0.0, 0.5, 1.0, 2.0, 2.5]
    same(o, Observations.from_dataframe(df, format="wide"))


def test_dataframe_string_cells_and_pandas_na():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"time": ["0", " 1 "], "x": pd.array([1, pd.NA], dtype="Int64"), "y": ["NA", "2.5"]})
    o = Observations.from_dataframe(df)
    assert o.ids == ["0"] and math.isnan(o.values[0][1, 0]) and math.isnan(o.values[0][0, 1])
    assert o.values[0][1, 1] == 2.5


def test_from_dataframe_needs_only_columns_and_getitem():
    class Col:
        def __init__(self, v): self.v = v
        def tolist(self): return list(self.v)
    class Frame:
        def __init__(self, d): self.d = d
        @property
        def columns(self): return list(self.d)
        def __getitem__(self, k): return Col(self.d[k])
    o = Observations.from_dataframe(Frame({"id": ["a", "a"], "time": [0, 1], "x": [1.0, 2.0]}))
    assert o.ids == ["a"] and o.values[0].tolist() == [[1.0], [2.0]]


def test_to_dataframe_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        ragged_obs().to_dataframe()


def test_to_dataframe_name_clash():
    pytest.importorskip("pandas")
    o = Observations([[0.0]], [[[1.0]]], columns=["time"])
    with pytest.raises(ValueError, match=r"\['time'\] twice; pass another id_col or time_col"):
        o.to_dataframe()
    assert list(o.to_dataframe(time_col="t").columns) == ["id", "t", "time"]


# ---------------------------------------------------------------- the shipped dataset

def test_lynx_hare_dataset():
    o = load_lynx_hare()
    assert len(o) == 1 and o.ids == ["hudson_bay"] and o.columns == ["hare", "lynx"]
    assert o.source == "hudson_bay_lynx_hare.csv"
    t, y = o["hudson_bay"]
    assert t.dtype == y.dtype == torch.float64
    assert t.tolist() == [float(1900 + i) for i in range(21)]  # the file's own time axis, in calendar years: plots show the years
    assert y.shape == (21, 2) and not torch.isnan(y).any()
    assert y[3, 0].item() == 77.4 and y[4, 1].item() == 59.4       # hare 1903, lynx 1904
    assert y[0].tolist() == [30.0, 4.0] and y[20].tolist() == [24.7, 8.6]
    assert y[:, 0].max().item() == 77.4 and y[:, 1].max().item() == 59.4


def test_dataset_is_package_data():
    res = files("paramfittorchdemo").joinpath("datasets", "hudson_bay_lynx_hare.csv")
    assert res.is_file()
    text = res.read_text()
    assert "Hewitt" in text and "Carpenter" in text and "\nyear,hare,lynx\n" in text
    # every shipped dataset matches a package_data pattern in setup.py, so a non-editable install carries it
    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    patterns = re.findall(r"package_data\s*=\s*\{[^}]*\[([^\]]*)\]", setup)
    assert patterns, "setup.py has no package_data"
    globs = re.findall(r"'([^']+)'|\"([^\"]+)\"", patterns[0])
    globs = [a or b for a, b in globs]
    shipped = [p.name for p in Path(str(files("paramfittorchdemo").joinpath("datasets"))).iterdir()]
    assert shipped and all(any(fnmatch.fnmatch(f"datasets/{n}", g) for g in globs) for n in shipped)


# ---------------------------------------------------------------- malformed CSV files: file, line and column named

CSV_ERRORS = [
    # (file text, keyword arguments, exception, fragments the message must contain)
    ("id,t,x\nA,0,1\n", {}, ValueError,
     ["data.csv", "line 1", "no column 'time' (from time_col)", "['id', 't', 'x']"]),
    ("# a comment\nid,time,x\nA,0,1\n", {"columns": ["x", "y", "z"]}, ValueError,
     ["data.csv", "line 2", "no columns 'y', 'z' (from columns)", "['id', 'time', 'x']"]),
    ("", {}, ValueError, ["data.csv", "is empty", "line 1"]),
    ("# only\n# comments\n", {}, ValueError, ["data.csv", "is empty", "after the comments", "line 3"]),
    ("id,time,x\n", {}, ValueError, ["data.csv", "header (line 1) ['id', 'time', 'x'] but no data rows"]),
    ("id,time,x\nA,0,1\nA,1,abc\n", {}, ValueError, ["data.csv", "line 3, column 'x'", "non-numeric value 'abc'"]),
    ("id,time,x\nA,0,1\nA,1,3,5\n", {}, ValueError,
     ["data.csv", "line 3", "4 cells but the header (line 1) has 3 columns", "extra cell '5' after the last column 'x'"]),
    ("id,time,x,y\nA,0,1,2\nA,1,3\n", {}, ValueError,
     ["data.csv", "line 3", "3 cells but the header (line 1) has 4 columns", "no cell for column 'y'"]),
    ("id,time,x\nA,0,1\nA,2001-05-01,2\n", {}, ValueError,
     ["data.csv", "line 3, column 'time'", "non-numeric time '2001-05-01'"]),
    ("id,time,x\nA,0,1\nA,NA,2\n", {}, ValueError, ["data.csv", "line 3, column 'time'", "missing time 'NA'"]),
    ("id,time,x\nA,0,1\nA,,2\n", {}, ValueError, ["data.csv", "line 3, column 'time'", "missing time"]),
    ("id,time,x\nA,0,1\nA,inf,2\n", {}, ValueError, ["data.csv", "line 3, column 'time'", "time 'inf' is not finite"]),
    ("id,time,x\nA,-Infinity,1\n", {}, ValueError, ["data.csv", "line 2, column 'time'", "'-Infinity' is not finite"]),
    ("id,time,x\nA,0,1\nA,1,-inf\n", {}, ValueError, ["data.csv", "line 3, column 'x'", "value '-inf' is not finite"]),
    ("id,time,x\nA,0,1\nB,0,1\nA,1,2\nA,1,3\n", {}, ValueError,
     ["data.csv", "line 5, column 'time'", "trajectory 'A'", "duplicated time 1.0 (also on line 4)"]),
    ("id,time,x\nA,0,1\nA,2,2\nA,1.5,3\n", {}, ValueError,
     ["data.csv", "line 4, column 'time'", "trajectory 'A'", "decreasing time: t=1.5 comes after t=2.0 on line 3"]),
    ("id,time,x,y\nA,0,1,2\nB,0,,\nB,1,NA,nan\n", {}, ValueError,
     ["data.csv", "lines 3-4", "columns ['x', 'y']", "trajectory 'B' has no observed value"]),
    ("id,time,x\nA,0,1\n,1,2\n", {}, ValueError, ["data.csv", "line 3, column 'id'", "missing trajectory id"]),
    ("time,x\n0,1\n", {"format": "tall"}, ValueError, ["data.csv", "unknown format 'tall'", "'long'", "'wide'"]),
    ("id,time,x,x\nA,0,1,2\n", {}, ValueError, ["data.csv", "line 1", "column name 'x' appears twice (columns 3 and 4)"]),
    ("id,time,,x\nA,0,1,2\n", {}, ValueError, ["data.csv", "line 1", "column 3 of the header has no name"]),
    ("id,time\nA,0\n", {}, ValueError, ["data.csv", "line 1", "no column of observed values", "['id', 'time']"]),
    ("time,x\n0,1\n1,A\n", {}, ValueError,
     ["data.csv", "line 3, column 'x'", "non-numeric value 'A'"]),
    ("traj,time,x\nA,0,1\n", {}, ValueError,
     ["data.csv", "line 2, column 'traj'", "non-numeric value 'A'", "pass id_col='traj'"]),
    ('id,time,x\nA,0,"1\n', {}, ValueError, ["data.csv", "line 2"]),
    # wide format
    ("time,A:x,A:y,B:x,B:y\n0,1,2,3,4\n0,5,6,,\n", {"format": "wide"}, ValueError,
     ["data.csv", "line 3, column 'time'", "trajectory 'A'", "duplicated time 0.0 (also on line 2)"]),
    ("time,A:x,B:x\n1,1,2\n0,,3\n", {"format": "wide"}, ValueError,
     ["data.csv", "line 3, column 'time'", "trajectory 'B'", "t=0.0 comes after t=1.0 on line 2"]),
    ("time,A:x,A:y,B:x\n0,1,2,3\n", {"format": "wide"}, ValueError,
     ["data.csv", "line 1", "no column 'B:y' for trajectory 'B'", "['time', 'A:x', 'A:y', 'B:x']"]),
    ("time,A:x,y\n0,1,2\n", {"format": "wide"}, ValueError,
     ["data.csv", "line 1", "columns ['y']", "name no trajectory"]),
    ("time,A:x,B:x\n0,1,\n1,2,NA\n", {"format": "wide"}, ValueError,
     ["data.csv", "lines 2-3", "columns ['B:x']", "trajectory 'B' has no observed value"]),
    ("time,A:x,B:x\n0,1,2\n1,2,?\n", {"format": "wide"}, ValueError,
     ["data.csv", "line 3, column 'B:x'", "non-numeric value '?'"]),
    ("day,x\n0,1\n", {"format": "wide"}, ValueError, ["data.csv", "line 1", "no column 'time' (from time_col)"]),
    ("time,x\n0,1\n", {"format": "wide", "columns": ["x", "y"]}, ValueError, ["data.csv", "line 1", "no column 'y'"]),
    # argument types
    ("time,x\n0,1\n", {"time_col": 0}, TypeError, ["time_col as a string"]),
    ("time,x\n0,1\n", {"columns": [1]}, TypeError, ["columns as a non-empty list"]),
]


@pytest.mark.parametrize("text,kw,exc,fragments", CSV_ERRORS)
def test_malformed_csv(tmp_path, text, kw, exc, fragments):
    p = write(tmp_path, text)
    with pytest.raises(exc) as e:
        Observations.from_csv(p, **kw)
    for f in fragments: assert f in str(e.value), f"{f!r} not in {str(e.value)!r}"


def test_from_csv_path_type_and_missing_file(tmp_path):
    with pytest.raises(TypeError, match="path as a file path"): Observations.from_csv(["a.csv"])
    with pytest.raises(FileNotFoundError): Observations.from_csv(tmp_path / "nope.csv")


# ---------------------------------------------------------------- malformed DataFrames: 0-based row named

def df_errors():
    return [
        ({"id": ["A", "A"], "time": [0, 1], "x": [1, "abc"]}, {},
         ["'lab.xlsx' (DataFrame), row 1 (0-based), column 'x'", "non-numeric value 'abc'"]),
        ({"id": ["A", "A"], "time": [0, None], "x": [1, 2]}, {},
         ["'lab.xlsx' (DataFrame), row 1 (0-based), column 'time'", "missing time"]),
        ({"id": ["A", "A"], "time": [0, float("inf")], "x": [1, 2]}, {}, ["row 1 (0-based), column 'time'", "not finite"]),
        ({"id": ["A", "A", "A"], "time": [0, 1, 1], "x": [1, 2, 3]}, {},
         ["'lab.xlsx' (DataFrame), row 2 (0-based), column 'time'", "trajectory 'A'", "duplicated time 1.0 (also on row 1 (0-based))"]),
        ({"id": ["A", "A"], "time": [1, 0], "x": [1, 2]}, {},
         ["row 1 (0-based), column 'time'", "t=0.0 comes after t=1.0 on row 0 (0-based)"]),
        ({"id": ["A"], "t": [0], "x": [1]}, {}, ["'lab.xlsx' (DataFrame), the column names", "no column 'time'", "['id', 't', 'x']"]),
        ({"id": [], "time": [], "x": []}, {}, ["'lab.xlsx' (DataFrame)", "no data rows"]),
        ({"id": ["A", "B"], "time": [0, 0], "x": [1, None]}, {},
         ["'lab.xlsx' (DataFrame), row 1 (0-based), columns ['x']", "trajectory 'B' has no observed value"]),
        ({"time": [0, 1], "A:x": [1, 2], "B:x": [1, None], "C": [1, 1]}, {"format": "wide"},
         ["'lab.xlsx' (DataFrame), the column names, columns ['C']", "name no trajectory"]),
        ({"time": [0], "x": [1]}, {"format": "WIDE"}, ["'lab.xlsx' (DataFrame) got unknown format 'WIDE'"]),
    ]


@pytest.mark.parametrize("i", range(len(df_errors())))
def test_malformed_dataframe(i):
    pd = pytest.importorskip("pandas")
    data, kw, fragments = df_errors()[i]
    with pytest.raises(ValueError) as e:
        Observations.from_dataframe(pd.DataFrame(data), source="lab.xlsx", **kw)
    for f in fragments: assert f in str(e.value), f"{f!r} not in {str(e.value)!r}"


def test_dataframe_without_source_and_wrong_type():
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match=r"the DataFrame, row 0 \(0-based\), column 'x': non-numeric value 'q'"):
        Observations.from_dataframe(pd.DataFrame({"time": [0], "x": ["q"]}))
    with pytest.raises(TypeError, match="needs a pandas DataFrame.*got dict"):
        Observations.from_dataframe({"time": [0], "x": [1]})


# ---------------------------------------------------------------- wrong shapes and types: expected vs got

@pytest.mark.parametrize("args,kw,exc,match", [
    (([[0.0, 1.0]], [[[1.0], [2.0], [3.0]]]), {}, ValueError,
     r"values\[0\] \(trajectory '0'\) of shape \(time_b, n_obs\) = \(2, n_obs\) .* got \(3, 1\)"),
    (([[0.0, 1.0]], [[1.0, 2.0]]), {}, ValueError, r"of shape \(time_b, n_obs\) = \(2, n_obs\) .* got \(2,\); .* values\[:, None\]"),
    (([[[0.0, 1.0]]], [[[1.0], [2.0]]]), {}, ValueError, r"times\[0\] \(trajectory '0'\) of shape \(time_b,\) .* got shape \(1, 2\)"),
    (([[]], [np.zeros((0, 1))]), {}, ValueError, r"at least one time point, got shape \(0,\)"),
    (([[0.0, 1.0], [0.0]], [[[1.0], [2.0]]]), {}, ValueError, "got 2 time vectors and 1 value arrays"),
    (([], []), {}, ValueError, "at least one trajectory, got none"),
    (([[0.0], [0.0]], [[[1.0]], [[1.0, 2.0]]]), {}, ValueError, r"values\[0\] has 1, values\[1\] \(trajectory '1'\) has 2"),
    (([[0.0]], [np.zeros((1, 0))]), {}, ValueError, r"at least one observed column, got values of shape \(1, 0\)"),
    (([[0.0, nan]], [[[1.0], [2.0]]]), {"source": "f.csv"}, ValueError,
     r"Observations from 'f.csv': times\[0\] \(trajectory '0'\) holds nan at index 1"),
    (([[0.0, 2.0, 1.0]], [[[1.0]] * 3]), {"ids": ["A"]}, ValueError, r"times\[0\]\[1\]=2.0 is followed by times\[0\]\[2\]=1.0"),
    (([[0.0, 1.0]], [[[1.0], [float("inf")]]]), {"columns": ["x"]}, ValueError, r"holds inf at time index 1 \(t=1.0\), column 'x'"),
    (([[0.0]], [[[nan, nan]]]), {"ids": ["A"]}, ValueError, r"trajectory 'A' \(values\[0\]\) has no observed value at all"),
    (([[0.0]], [[[1.0]]]), {"ids": ["A", "B"]}, ValueError, r"needs 1 ids, one per trajectory, got 2"),
    (([[0.0]], [[[1.0]]]), {"ids": [1]}, TypeError, r"ids as strings, got 1 \(int\)"),
    (([[0.0], [1.0]], [[[1.0]], [[1.0]]]), {"ids": ["A", "A"]}, ValueError, r"distinct ids, but \['A'\]"),
    (([[0.0]], [[[1.0, 2.0]]]), {"columns": ["x"]}, ValueError, r"needs 2 columns, one per observed quantity, got 1"),
    (([[0.0]], [[[1.0]]]), {"columns": "x y"}, ValueError, None),
    (("t.csv", [[[1.0]]]), {}, TypeError, "times as a list .* got str"),
    (([["a", "b"]], [[[1.0], [2.0]]]), {}, TypeError, r"times\[0\] as real numbers, got strings \(dtype <U1\)"),
    (([[0.0, [1.0]]], [[[1.0], [2.0]]]), {}, TypeError, r"times\[0\] as numbers \(a tensor, array or list\), got list"),
    (([[0.0]], [torch.ones(1, 1, dtype=torch.complex64)]), {}, TypeError, "real numbers"),
])
def test_constructor_errors(args, kw, exc, match):
    if match is None:      # a single string is one name: "x y" is accepted as the one column
        assert Observations(*args, **kw).columns == ["x y"]
        return
    with pytest.raises(exc, match=match):
        Observations(*args, **kw)


@pytest.mark.parametrize("ts,ys,match", [
    (torch.linspace(0, 1, 5), torch.rand(5, 2), r"ys of shape \(B, time, n_obs\), got \(5, 2\); .*ys\[None\]"),
    (torch.linspace(0, 1, 4), torch.rand(3, 5, 2), r"ts of shape \(time,\) = \(5,\) or \(B, time\) = \(3, 5\) .* got \(4,\)"),
    (torch.rand(2, 5), torch.rand(3, 5, 2), r"\(B, time\) = \(3, 5\) .* got \(2, 5\)"),
])
def test_from_arrays_shape_errors(ts, ys, match):
    with pytest.raises(ValueError, match=match):
        Observations.from_arrays(ts, ys)


def test_from_arrays_type_error():
    with pytest.raises(TypeError, match="ys as real numbers, got strings"):
        Observations.from_arrays([0.0, 1.0], [["a", "b"]])


# ---------------------------------------------------------------- encodings, compression and delimiters

LATIN1 = "# mesuré au labo\ntime,x,température\n0,1,20\n1,café,21\n"


def write_bytes(tmp_path, data: bytes, name="data.csv"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def message(exc_info) -> str:
    return str(exc_info.value)


def test_latin1_file_names_the_file_the_line_and_the_fix(tmp_path):
    p = write_bytes(tmp_path, LATIN1.encode("latin-1"))
    with pytest.raises(ValueError) as e:
        Observations.from_csv(p)
    msg = message(e)
    for part in [str(p), "line 1", "byte 0xe9", "cannot be decoded as utf-8", 'encoding="latin-1"', "save the file as UTF-8"]:
        assert part in msg, msg
    assert not isinstance(e.value, UnicodeDecodeError) and e.value.__cause__ is None
    o = Observations.from_csv(p, encoding="latin-1", columns=["température"])
    assert o.columns == ["température"] and o.values[0].tolist() == [[20.0], [21.0]]


def test_decoding_error_points_at_the_line_of_the_bad_byte(tmp_path):
    p = write_bytes(tmp_path, "time,x\n0,1\n1,caf\xe9\n".encode("cp1252"))
    with pytest.raises(ValueError, match=r"line 3: byte 0xe9 \(at byte 6 of the line, near '1,caf\\xe9'\)"):
        Observations.from_csv(p)
    with pytest.raises(ValueError, match=r"line 3, column 'x': non-numeric value 'café'"):
        Observations.from_csv(p, encoding="cp1252")


def test_utf16_files(tmp_path):
    text = "time,x\n0,1\n1,2\n"
    with pytest.raises(ValueError, match='UTF-16 byte order mark, so pass encoding="utf-16"'):
        Observations.from_csv(write_bytes(tmp_path, text.encode("utf-16")))
    assert Observations.from_csv(tmp_path / "data.csv", encoding="utf-16").values[0].tolist() == [[1.0], [2.0]]
    with pytest.raises(ValueError, match=r"line 1: the file holds NUL characters.*\"utf-16-le\" when it has no byte order mark"):
        Observations.from_csv(write_bytes(tmp_path, text.encode("utf-16-le"), "le.csv"))


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    p = write_bytes(tmp_path, "\ufefftime,x\n0,1\n".encode("utf-8"))
    assert Observations.from_csv(p).columns == ["x"]
    assert Observations.from_csv(p, encoding="UTF8").columns == ["x"]


@pytest.mark.parametrize("name", ["data.csv.gz", "data.csv"])
def test_gzipped_csv_is_read_by_its_content(tmp_path, name):
    import gzip
    p = write_bytes(tmp_path, gzip.compress("# é\ntime,x\n0,1\n1,NA\n".encode("utf-8")), name)
    o = Observations.from_csv(p)
    assert o.times[0].tolist() == [0.0, 1.0] and math.isnan(o.values[0][1, 0]) and o.source == str(p)
    latin = write_bytes(tmp_path, gzip.compress(LATIN1.encode("latin-1")), "latin.csv.gz")
    with pytest.raises(ValueError, match='latin.csv.gz.*byte 0xe9.*encoding="latin-1"'):
        Observations.from_csv(latin)
    assert Observations.from_csv(latin, encoding="latin-1", columns=["température"]).n_obs == 1


def test_damaged_gzip_and_zip_files(tmp_path):
    import gzip, zipfile
    p = write_bytes(tmp_path, gzip.compress(b"time,x\n" + b"0,1\n" * 200)[:25], "cut.csv.gz")
    with pytest.raises(ValueError, match=r"cut.csv.gz' is gzip-compressed but cannot be decompressed .*truncated or damaged"):
        Observations.from_csv(p)
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w") as z: z.writestr("sheet.xml", "<x/>")
    with pytest.raises(ValueError, match=r"book.xlsx' is a ZIP archive .*pandas.read_excel .*Observations.from_dataframe"):
        Observations.from_csv(tmp_path / "book.xlsx")


@pytest.mark.parametrize("text,delimiter,word", [
    ("time;x;y\n0;1;2\n", ";", "semicolon"),
    ("time\tx\n0\t1\n", "\t", "tab"),
    ("time|x\n0|1\n", "|", "vertical bar"),
])
def test_other_delimiters_are_named(tmp_path, text, delimiter, word):
    p = write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        Observations.from_csv(p)
    msg = message(e)
    assert "data.csv', line 1: the header" in msg and f"the file looks {word}-separated, so pass delimiter={delimiter!r}" in msg, msg
    assert Observations.from_csv(p, delimiter=delimiter).values[0][0, 0] == 1.0


def test_semicolon_files_with_decimal_commas(tmp_path):
    p = write(tmp_path, "# European style\nid;time;x\nA;0;1,5\nA;1;2\n")
    with pytest.raises(ValueError, match=r"line 3, column 'x': non-numeric value '1,5'.*decimal comma: write a decimal point"):
        Observations.from_csv(p, delimiter=";")
    p = write(tmp_path, "id;time;x\nA;0;1\nA;1\n", name="short.csv")
    with pytest.raises(ValueError, match=r"line 3: 2 cells .* Look for a missing or extra semicolon"):
        Observations.from_csv(p, delimiter=";")
    p = write(tmp_path, "time,x\n0,1\n", name="comma.csv")
    with pytest.raises(ValueError, match=r"one single column when split at semicolons, but it holds commas.*delimiter=','"):
        Observations.from_csv(p, delimiter=";")


def test_gzipped_semicolon_file_errors_name_the_file_and_the_line(tmp_path):
    "A gzip-compressed, semicolon-separated file: read with delimiter=';'; its errors name the .gz file, the line and the column."
    import gzip
    p = write_bytes(tmp_path, gzip.compress("# lab export\nid;time;x;y\nA;0;1;2\nA;1;3;4\nB;0;5;6\n".encode("utf-8")), "lab.csv.gz")
    o = Observations.from_csv(p, delimiter=";")
    assert o.ids == ["A", "B"] and o.columns == ["x", "y"] and o.values[0].tolist() == [[1.0, 2.0], [3.0, 4.0]] and o.source == str(p)
    with pytest.raises(ValueError, match=r"lab.csv.gz', line 2: the header .*semicolon-separated, so pass delimiter=';'"):
        Observations.from_csv(p)
    bad = write_bytes(tmp_path, gzip.compress("time;x\n0;1\n1;oops\n".encode("utf-8")), "bad.csv.gz")
    with pytest.raises(ValueError, match=r"bad.csv.gz', line 3, column 'x': non-numeric value 'oops'"):
        Observations.from_csv(bad, delimiter=";")


@pytest.mark.parametrize("kw,exc,match", [
    (dict(encoding="klingon"), ValueError, r"unknown encoding 'klingon'; use e.g. 'utf-8', 'latin-1'"),
    (dict(encoding="rot13"), ValueError, r"cannot decode with encoding 'rot13'"),
    (dict(encoding=None), TypeError, "encoding as a string"),
    (dict(delimiter=";;"), ValueError, r"delimiter as one character .* got ';;'"),
    (dict(delimiter='"'), ValueError, "delimiter as one character other than a double quote"),
    (dict(delimiter=1), TypeError, "delimiter as a one-character string"),
])
def test_bad_encoding_and_delimiter_arguments(tmp_path, kw, exc, match):
    with pytest.raises(exc, match=match):
        Observations.from_csv(write(tmp_path, "time,x\n0,1\n"), **kw)


def test_from_csv_folder_and_bad_header_quote(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not a CSV file"):
        Observations.from_csv(tmp_path)
    with pytest.raises(ValueError, match=r"data.csv', line 2: not valid CSV"):
        Observations.from_csv(write(tmp_path, 'time,"x\n0,1\n'))


# ---------------------------------------------------------------- arrays that are no real numbers are refused, not converted

DATES = np.array(["2001-01-01", "2001-01-02", "2001-01-05"], dtype="datetime64[D]")


@pytest.mark.parametrize("times,values,match", [
    ([DATES], [np.ones((3, 1))],
     r"times\[0\] as real numbers, got dates \(dtype datetime64\[D\]\); convert them to elapsed time "
     r".*\(t - t\[0\]\) / np.timedelta64\(1, \"D\"\)"),
    ([DATES - DATES[0]], [np.ones((3, 1))], r"times\[0\] as real numbers, got time spans \(dtype timedelta64\[D\]\)"),
    ([np.arange(3.0) + 0j], [np.ones((3, 1))], r"times\[0\] as real numbers, got complex numbers \(dtype complex128\)"),
    ([np.arange(3.0)], [np.ones((3, 1)) + 1j], r"values\[0\] as real numbers, got complex numbers"),
    ([np.arange(3.0)], [torch.ones(3, 1, dtype=torch.complex64)],
     r"values\[0\] as real numbers, got complex numbers \(dtype torch.complex64\)"),
    ([np.arange(3.0)], [np.ones((3, 1), dtype=bool)], r"values\[0\] as real numbers, got booleans"),
    ([[True, False, True]], [np.ones((3, 1))], r"times\[0\] as real numbers, got booleans"),
    ([torch.tensor([0, 1, 2]).bool()], [np.ones((3, 1))], r"times\[0\] as real numbers, got booleans \(dtype torch.bool\)"),
    ([np.array(["0", "1", "2"])], [np.ones((3, 1))], r"times\[0\] as real numbers, got strings"),
    ([[__import__("datetime").date(2001, 1, d) for d in (1, 2, 3)]], [np.ones((3, 1))],
     r"times\[0\] as real numbers, got an object array holding dates, e.g. datetime.date\(2001, 1, 1\) at flat index 0"),
])
def test_constructor_refuses_arrays_that_are_no_real_numbers(times, values, match):
    with pytest.raises(TypeError, match="Observations needs " + match):
        Observations(times, values)


def test_object_arrays_of_numbers_and_none_are_read():
    o = Observations([np.array([0.0, 1, 2], dtype=object)], [[[1.0], [None], [2]]])
    assert o.times[0].tolist() == [0.0, 1.0, 2.0] and math.isnan(o.values[0][1, 0])


def test_from_arrays_refuses_dates_and_complex():
    with pytest.raises(TypeError, match=r"Observations.from_arrays needs ts as real numbers, got dates"):
        Observations.from_arrays(DATES, np.ones((1, 3, 1)))
    with pytest.raises(TypeError, match=r"Observations.from_arrays needs ys as real numbers, got complex numbers"):
        Observations.from_arrays(np.arange(3.0), np.ones((1, 3, 1)) + 0j)


@pytest.mark.parametrize("column,what,fix", [
    ("dates", "got the date Timestamp('2001-01-01 00:00:00') (column dtype datetime64",
     "(df['time'] - df['time'].min()) / pd.Timedelta(days=1)"),
    ("spans", "got the time span Timedelta('0 days 00:00:00') (column dtype timedelta64", "df['time'] / pd.Timedelta(days=1)"),
])
def test_dataframe_date_time_columns_are_refused(column, what, fix):
    pd = pytest.importorskip("pandas")
    times = pd.to_datetime(["2001-01-01", "2001-01-03"]) if column == "dates" else pd.to_timedelta([0, 2], unit="D")
    with pytest.raises(TypeError) as e:
        Observations.from_dataframe(pd.DataFrame({"time": times, "x": [1.0, 2.0]}), source="lab.xlsx")
    msg = message(e)
    assert msg.startswith("Observations.from_dataframe: 'lab.xlsx' (DataFrame), row 0 (0-based), column 'time': "), msg
    assert what in msg and fix in msg, msg


class Frame:
    "The least a table needs for from_dataframe: .columns, and df[col] with .tolist()."
    def __init__(self, d): self.d = d
    @property
    def columns(self): return list(self.d)
    def __getitem__(self, k):
        values = list(self.d[k])
        return type("Column", (), {"tolist": lambda self: values})()


def test_dataframe_complex_and_boolean_values_are_refused():
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError,
                       match=r"column 'x': got the complex number \(1\+1j\) \(column dtype complex128\); observed values must be real"):
        Observations.from_dataframe(pd.DataFrame({"time": [0.0, 1.0], "x": [1 + 1j, 2.0]}))
    with pytest.raises(TypeError, match=r"column 'x': got the boolean True \(column dtype bool\).*df\['x'\].astype\(float\)"):
        Observations.from_dataframe(pd.DataFrame({"time": [0.0, 1.0], "x": [True, False]}))
    with pytest.raises(TypeError, match=r"column 'x': got the complex number"):  # a numpy complex scalar is no silent real part either
        Observations.from_dataframe(Frame({"time": [0.0], "x": [np.complex128(1 + 0j)]}))


def test_dataframe_unused_date_column_is_fine():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"date": pd.to_datetime(["2001-01-01", "2001-01-03"]), "time": [0.0, 2.0], "x": [1.0, 2.0]})
    assert Observations.from_dataframe(df, columns=["x"]).values[0].tolist() == [[1.0], [2.0]]


def test_to_csv_argument_types(tmp_path):
    o = ragged_obs()
    with pytest.raises(TypeError, match=r"to_csv needs path as a file path \(str or pathlib.Path\), got list"): o.to_csv(["a.csv"])
    with pytest.raises(TypeError, match="to_csv needs comment as a string"): o.to_csv(tmp_path / "o.csv", comment=3)
    with pytest.raises(TypeError, match="needs time_col as a string, got int 3"): o.to_csv(tmp_path / "o.csv", time_col=3)
    assert not (tmp_path / "o.csv").exists()
