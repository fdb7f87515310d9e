-- Each sample is requested with a seed of its own (the same for every variant: common random numbers). Samples
-- made before keep NULL: they were drawn unseeded.
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS seed BIGINT;
