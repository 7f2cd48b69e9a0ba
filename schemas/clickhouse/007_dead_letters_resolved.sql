-- Dead letters a processor closes itself. A book-rotation movement that does not fit its
-- batch's state machine is an accepted event, so the event archive cannot resolve its dead
-- letter; the rotation processor rewrites the letter (same dead_letter_id, later
-- recorded_at) with `resolved = 1` when a late movement makes it valid, or when the
-- movement is edited or withdrawn. Store.dead_letters counts a letter resolved when this
-- flag is set or, as before, when its submission is in `events`.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS resolved UInt8 DEFAULT 0;
