-- Events of a source without record ids are recognised by their content (see Loader._dedupe_by_content),
-- so they need no stored key: their record_id is NULL. Keys given by a source stay as they are.
ALTER TABLE events ALTER COLUMN record_id DROP NOT NULL;
