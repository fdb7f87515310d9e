-- External endpoints have no local weights: their snapshot and quantization rows leave these empty.
ALTER TABLE model_snapshots ALTER COLUMN local_path DROP NOT NULL;
ALTER TABLE model_snapshots ALTER COLUMN bytes DROP NOT NULL;
ALTER TABLE model_snapshots ALTER COLUMN parameters DROP NOT NULL;
ALTER TABLE quantized_models ALTER COLUMN local_path DROP NOT NULL;
ALTER TABLE quantized_models ALTER COLUMN bytes_before DROP NOT NULL;
ALTER TABLE quantized_models ALTER COLUMN bytes_after DROP NOT NULL;
