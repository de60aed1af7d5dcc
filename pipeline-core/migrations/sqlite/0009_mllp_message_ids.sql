-- An MLLP message's origin is its sender and control id (MSH-3, MSH-4, MSH-10): finding an earlier
-- message with the same id and other content (a gateway that reset its counter) must not scan the
-- inbox. Partial, so MQTT's writes pay nothing for it.
CREATE INDEX inbox_mllp_origin ON inbox (origin) WHERE source = 'mllp';
