{#- The text of one key of a JSON column. DuckDB and PostgreSQL spell it differently, so models
    call this macro and never an engine's own function (portability to dbt-postgres). -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'covage')(column, key)) }}
{%- endmacro %}

{% macro default__json_text(column, key) -%}
    json_extract_string({{ column }}, '$."{{ key }}"')
{%- endmacro %}

{% macro postgres__json_text(column, key) -%}
    ({{ column }}::jsonb ->> '{{ key }}')
{%- endmacro %}

{#- A timestamp from text when it is in the normal form, else null (the raw text stays beside it). -#}
{% macro try_timestamp(text) -%}
    {{ return(adapter.dispatch('try_timestamp', 'covage')(text)) }}
{%- endmacro %}

{% macro default__try_timestamp(text) -%}
    try_cast({{ text }} as timestamp)
{%- endmacro %}

{% macro postgres__try_timestamp(text) -%}
    case when {{ text }} ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$' then cast({{ text }} as timestamp) end
{%- endmacro %}
