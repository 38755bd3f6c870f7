{#- COVAGE_DESTINATION=spark: dlt writes the raw tables as files in a lake (Parquet, and JSON
    lines for its own bookkeeping); Spark reads them as external tables over those folders. Run
    before every build (on-run-start): the tables are declared again, so a lake that moved, or
    files a load added, are what the build reads. Nothing to do on the other engines, where dlt's
    tables are tables already.

    The columns are declared, not inferred: a lake with no quarantined item yet still has the
    table, and a file that a load of another version wrote with more columns reads the same. -#}
{% macro register_lake() -%}
    {{ return(adapter.dispatch('register_lake', 'covage')()) }}
{%- endmacro %}

{% macro default__register_lake() -%}
{%- endmacro %}

{% macro spark__register_lake() -%}
    {%- set lake = env_var('COVAGE_DBT_LAKE_URL', '') -%}
    {%- set schema = var('covage_source_schema', env_var('COVAGE_DBT_SOURCE_SCHEMA', 'covage_raw')) -%}
    {%- if execute and lake -%}
        {%- set tables = {
            var('covage_events_table', 'events'): ('parquet', 'event_uuid string, model string, type string,
                object_type string, object_uuid string, creation_date timestamp_ntz,
                modification_date timestamp_ntz, event_date timestamp_ntz, creation_date_raw string,
                modification_date_raw string, event_date_raw string, event_date_invalid boolean,
                modification_date_invalid boolean, data string, extra_fields string, sort_value string,
                _dlt_load_id string'),
            'events_quarantine': ('parquet', 'quarantine_id string, reason string, event_uuid string,
                raw string, raw_base64 string, received_at timestamp_ntz, page_after string,
                _dlt_load_id string'),
            '_dlt_loads': ('json', 'load_id string, schema_name string, status bigint,
                inserted_at string, schema_version_hash string'),
        } -%}
        {%- do run_query('create database if not exists ' ~ schema) -%}
        {%- for name, (format, columns) in tables.items() -%}
            {%- do run_query('drop table if exists ' ~ schema ~ '.' ~ name) -%}
            {%- do run_query('create table ' ~ schema ~ '.' ~ name ~ ' (' ~ columns ~ ') using ' ~ format
                ~ " location '" ~ lake.rstrip('/') ~ '/' ~ schema ~ '/' ~ name ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- True where the raw events are files appended to (a lake), not a table dlt merges into. -#}
{% macro is_lake() -%}
    {{ return(target.type == 'spark') }}
{%- endmacro %}
