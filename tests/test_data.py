"""Data: loading and validating files, subsampling, the stratified split, the synthetic pool, the real files."""

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from alexp import AlexpError
from alexp.data import File, Synthetic, Table, resample_rows, split

FORMATS = ["csv", "parquet"]


def write(frame: pl.DataFrame, folder: Path, fmt: str) -> str:
    path = folder / f"data.{fmt}"
    frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
    return str(path)


def text_frame(**overrides) -> pl.DataFrame:
    columns = {
        "id": [10, 11, 12, 13, 14, 15],
        "text": ["good day", "bad day", "fine", "awful", "nice one", "terrible"],
        "label": [0, 1, 0, 1, 0, 1],
    }
    return pl.DataFrame({**columns, **overrides})


def error_message(make) -> str:
    """The message of the AlexpError that `make()` raises; it must be one line."""
    with pytest.raises(AlexpError) as info:
        make()
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- loading -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_load_text_file_gives_ids_class_indices_and_object_texts(tmp_path, fmt):
    path = write(text_frame(), tmp_path, fmt)
    table = File(path=path, label_column="label", text_column="text", id_column="id").load()
    assert table.ids.tolist() == [10, 11, 12, 13, 14, 15]
    assert table.y.tolist() == [0, 1, 0, 1, 0, 1]
    assert table.inputs.dtype == object and table.is_text
    assert table.inputs.tolist() == ["good day", "bad day", "fine", "awful", "nice one", "terrible"]
    assert table.classes == (0, 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_numeric_features_gives_float32_matrix(tmp_path, fmt):
    frame = pl.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, -1.5, 2.0, 3.25], "label": [1, 0, 0, 1]})
    table = File(path=write(frame, tmp_path, fmt), label_column="label", feature_columns=["a", "b"]).load()
    assert table.inputs.dtype == np.float32 and not table.is_text
    np.testing.assert_array_equal(table.inputs, [[1, 0.5], [2, -1.5], [3, 2.0], [4, 3.25]])
    assert table.y.tolist() == [1, 0, 0, 1]
    assert table.ids.tolist() == [0, 1, 2, 3]  # no id_column: row numbers


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_string_classes_map_the_second_class_to_one(tmp_path, fmt):
    frame = text_frame(label=["ham", "spam", "spam", "ham", "ham", "spam"])
    path = write(frame, tmp_path, fmt)
    table = File(path=path, label_column="label", text_column="text", classes=["ham", "spam"]).load()
    assert table.y.tolist() == [0, 1, 1, 0, 0, 1]
    assert table.classes == ("ham", "spam")


def test_load_carries_context_columns_in_row_order(tmp_path):
    path = write(text_frame(votes=[3, 1, 4, 1, 5, 9]), tmp_path, "parquet")
    table = File(path=path, label_column="label", text_column="text", context_columns=["votes"]).load()
    assert table.extra["votes"].tolist() == [3, 1, 4, 1, 5, 9]


# --- validation errors ---------------------------------------------------------------------------------------

def test_missing_file_is_reported(tmp_path):
    missing = tmp_path / "nowhere.parquet"
    message = error_message(File(path=str(missing), label_column="label", text_column="text").load)
    assert "not found" in message and "nowhere.parquet" in message


def test_missing_column_is_named(tmp_path):
    path = write(text_frame(), tmp_path, "parquet")
    message = error_message(File(path=path, label_column="label", text_column="body").load)
    assert "'body'" in message and "not in" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_null_text_is_reported(tmp_path, fmt):
    path = write(text_frame(text=["a", None, "c", "d", "e", "f"]), tmp_path, fmt)
    message = error_message(File(path=path, label_column="label", text_column="text").load)
    assert "null or empty" in message and "[1]" in message


def test_whitespace_text_is_reported(tmp_path):
    path = write(text_frame(text=["a", "b", "   ", "d", "", "f"]), tmp_path, "parquet")
    message = error_message(File(path=path, label_column="label", text_column="text").load)
    assert "2 null or empty" in message and "[2, 4]" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_null_label_is_reported(tmp_path, fmt):
    path = write(text_frame(label=[0, 1, None, 1, 0, 1]), tmp_path, fmt)
    message = error_message(File(path=path, label_column="label", text_column="text").load)
    assert "null values" in message and "'label'" in message


def test_label_outside_classes_names_the_value(tmp_path):
    path = write(text_frame(label=[0, 1, 2, 1, 0, 1]), tmp_path, "parquet")
    message = error_message(File(path=path, label_column="label", text_column="text").load)
    assert "outside classes" in message and "[2]" in message


def test_non_numeric_feature_column_is_named(tmp_path):
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0], "word": ["abc", "def", "ghi"], "label": [0, 1, 0]})
    path = write(frame, tmp_path, "parquet")
    message = error_message(File(path=path, label_column="label", feature_columns=["x", "word"]).load)
    assert "not numeric: ['word']" in message


def test_string_ids_are_kept_and_duplicate_ids_rejected(tmp_path):
    path = write(text_frame(id=["a", "b", "c", "d", "e", "f"]), tmp_path, "parquet")
    table = File(path=path, label_column="label", text_column="text", id_column="id").load()
    assert table.ids.tolist() == ["a", "b", "c", "d", "e", "f"]
    path = write(text_frame(id=["a", "b", "c", "d", "e", "a"]), tmp_path, "parquet")
    message = error_message(File(path=path, label_column="label", text_column="text", id_column="id").load)
    assert "id column 'id' must be unique" in message and "'a'" in message


@pytest.mark.parametrize("inputs", [{"text_column": "text", "feature_columns": ["a"]}, {}],
                         ids=["both", "neither"])
def test_exactly_one_of_text_or_feature_columns(inputs):
    message = error_message(lambda: File(path="x.csv", label_column="label", **inputs))
    assert "exactly one of text_column or feature_columns" in message


def test_three_classes_are_rejected():
    message = error_message(lambda: File(path="x.csv", label_column="y", text_column="t", classes=[0, 1, 2]))
    assert "two distinct labels" in message and "[0, 1, 2]" in message


@pytest.mark.parametrize("name, value", [("test_size", 0.0), ("test_size", 1.0), ("positive_rate", 0.0),
                                         ("positive_rate", 1.2)])
def test_fractions_must_lie_strictly_between_0_and_1(name, value):
    message = error_message(lambda: File(path="x.csv", label_column="y", text_column="t", **{name: value}))
    assert name in message and repr(value) in message


def test_too_few_rows_for_a_stratified_subsample_is_an_alexp_error(tmp_path):
    # One positive among 40 rows: max_rows cannot stratify; this must surface as an AlexpError, not a
    # scikit-learn ValueError with a traceback.
    frame = pl.DataFrame({"x": np.arange(40.0), "label": [1] + [0] * 39})
    path = write(frame, tmp_path, "parquet")
    error_message(File(path=path, label_column="label", feature_columns=["x"], max_rows=20).load)


# --- resample_rows -------------------------------------------------------------------------------------------

BALANCED = np.repeat([0, 1], 5000)


def test_positive_rate_drops_positives_and_keeps_all_negatives():
    rows = resample_rows(BALANCED, positive_rate=0.05, max_rows=None, seed=0)
    assert abs(BALANCED[rows].mean() - 0.05) < 0.005
    assert (BALANCED[rows] == 0).sum() == 5000
    assert np.all(np.diff(rows) > 0)  # sorted, no duplicates


def test_positive_rate_above_the_data_drops_negatives():
    rows = resample_rows(BALANCED, positive_rate=0.8, max_rows=None, seed=0)
    assert (BALANCED[rows] == 1).sum() == 5000
    assert abs(BALANCED[rows].mean() - 0.8) < 0.005


def test_max_rows_gives_a_stratified_subsample_of_that_size():
    y = np.r_[np.zeros(9000, int), np.ones(1000, int)]
    rows = resample_rows(y, positive_rate=None, max_rows=500, seed=0)
    assert len(rows) == 500 and len(np.unique(rows)) == 500
    assert abs(y[rows].sum() - 50) <= 1


def test_resampling_depends_only_on_the_seed():
    a = resample_rows(BALANCED, 0.05, 2000, seed=3)
    b = resample_rows(BALANCED, 0.05, 2000, seed=3)
    c = resample_rows(BALANCED, 0.05, 2000, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- split ---------------------------------------------------------------------------------------------------

@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.1).astype(np.int64)
    return Table(np.arange(1000, dtype=np.int64), y, rng.normal(size=(1000, 3)).astype(np.float32))


def test_split_is_a_disjoint_cover_with_the_test_share(table):
    pool, test = split(table, test_size=0.25, seed=0)
    assert len(np.intersect1d(pool, test)) == 0
    np.testing.assert_array_equal(np.sort(np.r_[pool, test]), np.arange(len(table)))
    assert len(test) == 250


def test_split_preserves_the_class_share(table):
    pool, test = split(table, test_size=0.25, seed=0)
    n_pos = table.y.sum()
    assert abs(table.y[test].sum() - 0.25 * n_pos) <= 1
    assert abs(table.y[pool].sum() - 0.75 * n_pos) <= 1


def test_split_depends_only_on_the_seed(table):
    a, b, c = split(table, 0.2, seed=1), split(table, 0.2, seed=1), split(table, 0.2, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_split_that_cannot_stratify_is_an_alexp_error():
    tiny = Table(np.arange(10), np.array([1] + [0] * 9), np.zeros((10, 1), np.float32))
    message = error_message(lambda: split(tiny, test_size=0.2, seed=0))
    assert "cannot split 10 rows" in message


# --- Synthetic -----------------------------------------------------------------------------------------------

def test_synthetic_table_shape_and_types():
    table = Synthetic(n_rows=2000, n_features=7, n_informative=3).load()
    assert table.inputs.shape == (2000, 7) and table.inputs.dtype == np.float32
    assert table.ids.tolist() == list(range(2000))
    assert set(np.unique(table.y)) == {0, 1}


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_synthetic_positive_share_matches_positive_rate(rate):
    table = Synthetic(n_rows=5000, positive_rate=rate).load()
    assert abs(table.y.mean() - rate) < 0.01


def test_synthetic_depends_only_on_generator_seed():
    a, b = Synthetic(n_rows=500, generator_seed=5).load(), Synthetic(n_rows=500, generator_seed=5).load()
    c = Synthetic(n_rows=500, generator_seed=6).load()
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.inputs, c.inputs)


def test_synthetic_rejects_positive_rate_above_one():
    message = error_message(lambda: Synthetic(positive_rate=1.5))
    assert "positive_rate" in message and "1.5" in message


def test_synthetic_rejects_more_informative_than_features():
    message = error_message(lambda: Synthetic(n_features=5, n_informative=8))
    assert "n_informative" in message and "8" in message


def test_synthetic_rejects_too_few_informative_dims_for_its_clusters():
    message = error_message(lambda: Synthetic(n_rows=200, n_features=4, n_informative=1))
    assert "n_informative=1 is too small for n_clusters_per_class=2" in message
    table = Synthetic(n_rows=200, n_features=4, n_informative=1, n_clusters_per_class=1).load()
    assert table.inputs.shape == (200, 4)


def test_the_replayed_mixture_rebuilds_make_classifications_rows_exactly():
    """The posterior's cluster parameters are the generator's own: replaying its stream gives back its rows."""
    gen = Synthetic(n_rows=3000, n_features=9, n_informative=4, n_clusters_per_class=2, class_sep=0.7,
                    generator_seed=11)
    unshuffled, _ = gen._generate(shuffle=False)
    mixture = gen.mixture()
    z = np.random.RandomState(11)
    from sklearn.datasets._samples_generator import _generate_hypercube

    _generate_hypercube(4, 4, z)
    noise = z.standard_normal(size=(3000, 4))
    sizes = np.round(mixture.priors * 3000).astype(int)
    start = 0
    for c, size in enumerate(sizes):
        rows = slice(start, start + size)
        np.testing.assert_allclose(unshuffled[rows, :4], noise[rows] @ mixture.transforms[c] + mixture.centroids[c])
        start += size
    assert mixture.labels.tolist() == [0, 1, 0, 1] and start == 3000


@pytest.mark.parametrize("flip_y", [0.0, 0.1])
def test_the_synthetic_posterior_is_calibrated_and_beats_a_fitted_model(flip_y):
    """p*(y | x) is the truth's own probability: in bins of p* the share of positives is p*, and no model fitted
    on half the rows ranks the other half better."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    table = Synthetic(n_rows=30_000, class_sep=0.5, flip_y=flip_y, generator_seed=3).load()
    p, y = table.extra["posterior"], table.y
    assert abs(p.mean() - y.mean()) < 0.005
    for low, high in [(0, 0.2), (0.2, 0.8), (0.8, 1)]:
        inside = (p >= low) & (p < high)
        gap = abs(y[inside].mean() - p[inside].mean())
        assert gap < 3 * np.sqrt(p[inside].mean() * (1 - p[inside].mean()) / inside.sum()) + 0.01
    half = len(y) // 2
    fitted = LogisticRegression(max_iter=2000).fit(table.inputs[:half], y[:half])
    assert log_loss(y[half:], p[half:]) < log_loss(y[half:], fitted.predict_proba(table.inputs[half:])[:, 1])
    assert p.min() >= flip_y / 2 - 1e-12 and p.max() <= 1 - flip_y / 2 + 1e-12


# --- real data (ALEXP_DATA_DIR) ------------------------------------------------------------------------------

def data_file(name: str) -> str:
    folder = os.environ.get("ALEXP_DATA_DIR")
    assert folder, "set ALEXP_DATA_DIR to the folder holding the real datasets (see PROVENANCE.md there)"
    path = Path(folder) / name
    assert path.is_file(), f"{path} not found: ALEXP_DATA_DIR={folder} lacks {name}"
    return str(path)


@pytest.mark.slow
def test_davidson_hate_speech_loads_with_its_rare_positive_share():
    table = File(path=data_file("davidson2017_hate_offensive.parquet"), label_column="hate_speech",
                 text_column="text", id_column="id").load()
    assert len(table) == 24_783
    assert abs(table.y.mean() - 0.0577) < 0.001
    assert table.is_text and len(np.unique(table.ids)) == len(table)


@pytest.mark.slow
def test_clickbait_subsampled_to_five_percent_keeps_all_negatives():
    table = File(path=data_file("clickbait_chakraborty2016.parquet"), label_column="is_clickbait",
                 text_column="text", id_column="id", positive_rate=0.05).load()
    assert abs(table.y.mean() - 0.05) < 0.001
    assert (table.y == 0).sum() == 16_001


@pytest.mark.slow
def test_the_cohen_reviews_carry_their_cheap_label_tier_and_select_one_review():
    from omegaconf import OmegaConf

    preset = OmegaConf.load(Path(__file__).parent.parent / "conf" / "data" / "cohen_reviews.yaml")
    args = {k: preset[k] for k in ("label_column", "text_column", "id_column", "context_columns")}
    table = File(path=data_file("cohen2006_drug_reviews.parquet"), **args).load()
    assert len(table) == 15_242 and abs(table.y.mean() - 0.0499) < 0.0005
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa_score(table.y, table.extra["label_abstract_screening"]) == pytest.approx(0.47, abs=0.01)
    one = File(path=data_file("cohen2006_drug_reviews.parquet"), select={"review": ["ACEInhibitors"]}, **args).load()
    assert len(one) == 2518 and set(one.extra["review"]) == {"ACEInhibitors"}
    with pytest.raises(AlexpError, match=r"no row of cohen2006_drug_reviews.parquet has review in \['Statins'\]"):
        File(path=data_file("cohen2006_drug_reviews.parquet"), select={"review": ["Statins"]}, **args).load()


def test_select_keeps_the_rows_with_listed_values_and_names_a_missing_column(tmp_path):
    path = tmp_path / "t.csv"
    pl.DataFrame({"x": [1.0, 2, 3, 4], "label": [0, 1, 0, 1], "group": ["a", "b", "a", "c"]}).write_csv(path)
    table = File(path=str(path), label_column="label", feature_columns=["x"], select={"group": ["a", "c"]}).load()
    assert table.inputs[:, 0].tolist() == [1.0, 3.0, 4.0]
    with pytest.raises(AlexpError, match="column 'grp' not in t.csv"):
        File(path=str(path), label_column="label", feature_columns=["x"], select={"grp": ["a"]}).load()


def test_a_positive_rate_that_leaves_no_positives_is_an_error():
    y = np.array([1] * 5 + [0] * 100)
    with pytest.raises(AlexpError, match="positive_rate=0.001 leaves no positives"):
        resample_rows(y, 0.001, None, seed=0)


def test_a_cached_synthetic_table_is_the_generated_one(tmp_path):
    fresh = Synthetic(n_rows=2000).load()
    first = Synthetic(n_rows=2000, cache_dir=str(tmp_path)).load()  # generates and writes
    files = list(tmp_path.glob("synthetic-*.npz"))
    assert len(files) == 1
    again = Synthetic(n_rows=2000, cache_dir=str(tmp_path)).load()  # reads
    for table in (first, again):
        np.testing.assert_array_equal(table.inputs, fresh.inputs)
        np.testing.assert_array_equal(table.y, fresh.y)
        np.testing.assert_array_equal(table.extra["posterior"], fresh.extra["posterior"])
    Synthetic(n_rows=2000, class_sep=0.5, cache_dir=str(tmp_path)).load()
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 2  # other parameters, another file


# --- files as users bring them ---------------------------------------------------------------------------------

def raw_tsv(folder: Path) -> Path:
    """A raw tab-separated corpus as public ones ship: stray `"` inside texts, no quoting at all."""
    texts = ['he said "hi there', "plain text", '"quoted start and more', 'ok "x" y', "the end", 'a 12" pipe']
    path = folder / "raw.tsv"
    path.write_text("id\ttext\tlabel\n" + "".join(f"{i}\t{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    return path


def test_a_raw_tsv_with_stray_quotes_is_read_whole_and_said(tmp_path, caplog):
    path = raw_tsv(tmp_path)
    table = File(path=str(path), label_column="label", text_column="text").load()
    assert list(table.inputs) == ['he said "hi there', "plain text", '"quoted start and more', 'ok "x" y',
                                  "the end", 'a 12" pipe']  # every row, its quotes kept as text
    (line,) = [r.getMessage() for r in caplog.records if "quotes as plain text" in r.getMessage()]
    assert "data.quote_char=null" in line
    caplog.clear()
    File(path=str(path), label_column="label", text_column="text", quote_char=None).load()
    assert not [r for r in caplog.records if "quotes as plain text" in r.getMessage()]  # asked for: no warning


def test_a_file_that_fails_both_ways_reports_the_quoted_reading_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,text,label\n1,\"ok\",0\n2,\"x\",1\n\xff\xfe\x00garbage,\"\n")
    message = error_message(lambda: File(path=str(path), label_column="label", text_column="text").load())
    assert message.startswith(f"cannot read {path}") or "label column" in message


def test_a_tilde_path_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(text_frame(), tmp_path, "csv")
    assert len(File(path="~/data.csv", label_column="label", text_column="text").load()) == 6


def test_a_tilde_on_the_command_line_says_how_to_quote_it(alexp, tmp_path):
    result = alexp("data=file", "data.path=~/x.csv", "data.label_column=label", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "data.path=~/x.csv: a ~ needs quotes on the command line: 'data.path=\"~/x.csv\"'" in result.stderr


def test_the_positive_class_and_its_share_are_said_and_a_majority_positive_is_warned(tmp_path, caplog):
    caplog.set_level("INFO")
    frame = pl.DataFrame({"text": [f"t{i}" for i in range(100)], "label": ["spam"] * 10 + ["ham"] * 90})
    path = write(frame, tmp_path, "csv")
    File(path=path, label_column="label", text_column="text", classes=["ham", "spam"]).load()
    assert "data: positive class 'spam' (label 'spam') is 10.0% of 100 rows" in caplog.text
    assert "majority" not in caplog.text
    caplog.clear()
    File(path=path, label_column="label", text_column="text", classes=["spam", "ham"],
         class_names=["spam", "ham"]).load()  # given the wrong way round
    assert "positive class 'ham' (label 'ham') is the majority (90%)" in caplog.text
    assert "give data.classes=[ham,spam]" in caplog.text


def test_a_pool_shrunk_by_positive_rate_says_so(caplog):
    caplog.set_level("INFO")
    y = np.array([1] * 50 + [0] * 150)
    rows = resample_rows(y, 0.5, None, 0)
    assert len(rows) == 100
    assert "data.positive_rate=0.5 keeps 100 of 200 rows (50 positives, 50 negatives)" in caplog.text
    caplog.clear()
    resample_rows(y, 0.25, None, 0)  # already at the rate: nothing dropped, nothing said
    assert "keeps" not in caplog.text
