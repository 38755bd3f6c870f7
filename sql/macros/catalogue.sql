{#- The event catalogue (seed `event_types`), read when a model is compiled to run, for the models
    that write a column per catalogue entry (`orders`: a milestone or a count per event type). A
    model that calls it declares `-- depends_on: {{ ref('event_types') }}`. At parse time there is
    nothing to read and the loops are empty. -#}
{% macro event_catalogue() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set rows = run_query("select * from " ~ ref('event_types') ~ " order by lifecycle_rank, event_type") -%}
    {{ return(rows.rows) }}
{%- endmacro %}

{#- {column name: [event types]} for a catalogue column such as `milestone` or `counted_as`, in
    lifecycle order. -#}
{% macro catalogue_columns(column) -%}
    {%- set out = {} -%}
    {%- for row in event_catalogue() if row[column] -%}
        {%- do out.setdefault(row[column], []).append(row['event_type']) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}
