{#- The text of one key of a JSON column. DuckDB and PostgreSQL spell it differently, so models
    call this macro and never an engine's own function (portability to dbt-postgres). -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'covage')(column, key)) }}
{%- endmacro %}

{% macro default__json_text(column, key) -%}
    json_extract_string({{ column }}, '$."{{ key }}"')
{%- endmacro %}

{% macro spark__json_text(column, key) -%}
    get_json_object({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro postgres__json_text(column, key) -%}
    ({{ column }}::jsonb ->> '{{ key }}')
{%- endmacro %}

{#- True when a JSON payload is an intervention report (CRI): an object of file labels mapped to
    http(s) links, none of its keys a documented field of another event. The reference gives no
    `type` for CRI events, so they are recognised by this, whatever their type; Python's
    covage_pipeline.records.is_report_payload applies the same rule (the archive uses it). -#}
{% macro is_report_payload(column) -%}
    {%- set links = '^\\{\\s*("([^"\\\\]|\\\\.)*"\\s*:\\s*"https?://([^"\\\\]|\\\\.)*"\\s*,?\\s*)+\\}$' -%}
    ({{ column }} is not null
        and {{ adapter.dispatch('matches_regex', 'covage')('cast(' ~ column ~ ' as ' ~ dbt.type_string() ~ ')', links) }}
        {%- for key in var('payload_fields') %}
        and {{ json_text(column, key) }} is null
        {%- endfor %})
{%- endmacro %}

{% macro default__matches_regex(text, pattern) -%}
    regexp_matches({{ text }}, '{{ pattern }}')
{%- endmacro %}

{% macro postgres__matches_regex(text, pattern) -%}
    ({{ text }} ~ '{{ pattern }}')
{%- endmacro %}

{% macro spark__matches_regex(text, pattern) -%}
    ({{ text }} rlike r'{{ pattern }}')
{%- endmacro %}
