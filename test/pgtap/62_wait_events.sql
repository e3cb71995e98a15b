-- 62_wait_events.sql: what PostgreSQL shows of moneroo's processes (1.3).
--   * on PostgreSQL 17 and later pg_stat_activity names what the launcher
--     and an idle worker wait for (wait_event_type Extension, wait_event
--     MonerooLauncherMain and MonerooWorkerMain); 15 and 16 show every
--     extension's waits as Extension;
--   * on 18, pg_get_loaded_modules() names the library moneroo, with the
--     extension's version (PG_MODULE_MAGIC_EXT); that row is checked on 18
--     only, where the function exists.
SET client_min_messages = warning;

SELECT plan(CASE WHEN current_setting('server_version_num')::int >= 180000 THEN 3 ELSE 2 END);

-- "type/event" of a process of this backend_type seen waiting in an
-- extension's wait, within 30 s (the launcher and a worker wait between
-- rounds almost all the time); NULL when none was seen.
CREATE FUNCTION pg_temp.extension_wait(kind text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    seen text;
BEGIN
    FOR i IN 1..300 LOOP
        -- pg_stat_activity is read once per transaction unless told otherwise
        PERFORM pg_stat_clear_snapshot();
        SELECT wait_event_type || '/' || wait_event INTO seen
        FROM pg_stat_activity
        WHERE backend_type = kind AND wait_event_type = 'Extension'
        LIMIT 1;
        IF seen IS NOT NULL THEN
            RETURN seen;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION pg_temp.named_on_17(event text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'Extension/' || CASE WHEN current_setting('server_version_num')::int >= 170000
                                THEN event ELSE 'Extension' END
$$;

SELECT is(pg_temp.extension_wait('moneroo worker'), pg_temp.named_on_17('MonerooWorkerMain'),
          'an idle worker waits in MonerooWorkerMain (17 and later; Extension before)');
SELECT is(pg_temp.extension_wait('moneroo launcher'), pg_temp.named_on_17('MonerooLauncherMain'),
          'the launcher waits in MonerooLauncherMain (17 and later; Extension before)');

-- 18: the magic block carries the name and version (read with EXECUTE:
-- before 18 the function does not exist, and the check is not planned).
CREATE FUNCTION pg_temp.loaded_module_on_18() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    got text;
BEGIN
    IF current_setting('server_version_num')::int < 180000 THEN
        RETURN;
    END IF;
    EXECUTE $q$SELECT module_name || ' ' || version FROM pg_get_loaded_modules()
               WHERE file_name = 'moneroo.so'$q$ INTO got;
    RETURN NEXT is(got, 'moneroo ' || (SELECT extversion FROM pg_extension WHERE extname = 'moneroo'),
                   'pg_get_loaded_modules() names moneroo and its version (18)');
END
$$;
SELECT * FROM pg_temp.loaded_module_on_18();

SELECT * FROM finish();
