-- A variant's quantization loss is measured against each of its baselines: its unquantized twin, and the matrix's
-- common reference where that is another variant. One row per (variant, baseline, benchmark), each with its
-- relation; the rows made before were all against the twin. The table is made again with the new key (DuckDB
-- cannot change a primary key in place); the published copy has no key and only gains the column.
ALTER TABLE quantization_loss ADD COLUMN IF NOT EXISTS relation VARCHAR DEFAULT 'twin';
ALTER TABLE quantization_loss RENAME TO quantization_loss_before_019;

CREATE TABLE quantization_loss (
    variant             VARCHAR NOT NULL,
    baseline            VARCHAR NOT NULL,   -- the same model unquantized
    relation            VARCHAR NOT NULL,   -- twin: the same engine's | reference: the matrix's common reference
    benchmark           VARCHAR NOT NULL,
    n_items             INTEGER NOT NULL,   -- items both were scored on
    pass_at_1           DOUBLE NOT NULL,
    baseline_pass_at_1  DOUBLE NOT NULL,
    delta               DOUBLE NOT NULL,    -- pass_at_1 - baseline_pass_at_1: negative is a loss
    delta_low           DOUBLE NOT NULL,    -- 95% paired bootstrap interval over items
    delta_high          DOUBLE NOT NULL,
    significant         BOOLEAN,            -- the interval excludes zero; NULL with fewer than 10 shared items
    computed_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, baseline, benchmark)
);

INSERT INTO quantization_loss BY NAME SELECT * FROM quantization_loss_before_019;
DROP TABLE quantization_loss_before_019;

-- A file from before write-audit-publish (013) has no published copy yet: it is made later, from the table above.
ALTER TABLE IF EXISTS published_quantization_loss ADD COLUMN IF NOT EXISTS relation VARCHAR DEFAULT 'twin';
ALTER TABLE IF EXISTS published_quantization_loss ALTER COLUMN relation DROP DEFAULT;
