"""Datasets in the formats users already hold, read into the classification Dataset.

members.py      a sample inside a container: the path CONTAINER#KEY, split back into its parts
formats.py      DATA_FORMATS: which reader a dataset path needs; read_bytes(path): any sample's
                bytes (a file, or a member read by its container's format), within the limits
webdataset.py   WebDataset tar shards (KEY.jpg + KEY.cls), members read in place by offset
hf_datasets.py  Hugging Face `datasets` (save_to_disk folders, parquet files): rows read in place
class_map.py    --class-map FILE: the dataset's class names -> the model's class indices
"""
