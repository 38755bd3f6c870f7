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
