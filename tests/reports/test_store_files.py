"""The aggregate store's files: what they hold reads back as stored, in files no larger than they need be."""

import io

import pyarrow.parquet as pq

from pipelines.reports.store import store_documents, store_tables
from tests.reports.test_traffic import generated_batch, merged


def test_store_files_read_back_as_stored_with_only_their_strings_dictionary_encoded(tmp_path):
    """A dictionary of the per-second lists or of the visitor sketches (nearly all distinct) only made the
    files larger and their writing slower and hungrier."""
    results = list(merged([generated_batch(20_000, 5_000)]).items())
    documents = dict(store_documents(results, str(tmp_path), "run", "hour", False))
    traffic, breakdown = store_tables(results, "run", "hour", False)
    for name, table in (("traffic", traffic), ("breakdown", breakdown)):
        [data] = [d for path, d in documents.items() if path.rsplit("/", 1)[-1].startswith(name)]
        assert pq.read_table(io.BytesIO(data), schema=table.schema).equals(table)
        encodings = {
            column.path_in_schema.split(".")[0]: column.encodings
            for column in (
                pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(i) for i in range(table.num_columns)
            )
        }
        for field in table.schema:
            dictionary = "RLE_DICTIONARY" in encodings[field.name]
            assert dictionary == (str(field.type) == "string"), (name, field.name, encodings[field.name])
