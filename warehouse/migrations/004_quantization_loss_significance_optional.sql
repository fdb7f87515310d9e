-- Significance is not claimed with fewer than 10 shared items.
ALTER TABLE quantization_loss ALTER COLUMN significant DROP NOT NULL;
