{#- Engine-specific spellings, dispatched so that every model builds unchanged on DuckDB,
    PostgreSQL and Spark (Spark SQL is also Databricks' dialect). Anything the engines spell the
    same way (percentile_cont ... within group, count(*) filter (where ...), date_trunc) is
    written inline. Spark's string literals are written raw (r'...') where they hold a regex:
    its parser would otherwise read the backslashes as escapes. -#}

{#- Hours between two timestamps, as a number. -#}
{% macro hours_between(start, end) -%}
    {{ return(adapter.dispatch('hours_between', 'covage')(start, end)) }}
{%- endmacro %}

{% macro default__hours_between(start, end) -%}
    (extract(epoch from ({{ end }}) - ({{ start }})) / 3600.0)
{%- endmacro %}

{% macro spark__hours_between(start, end) -%}
    ((unix_micros(cast({{ end }} as timestamp)) - unix_micros(cast({{ start }} as timestamp))) / 3600000000.0)
{%- endmacro %}

{#- Texts joined in a given order. Not dbt's listagg: on Spark it ignores the order. -#}
{% macro string_agg(measure, delimiter, order_by) -%}
    {{ return(adapter.dispatch('string_agg', 'covage')(measure, delimiter, order_by)) }}
{%- endmacro %}

{% macro default__string_agg(measure, delimiter, order_by) -%}
    string_agg({{ measure }}, {{ delimiter }} order by {{ order_by }})
{%- endmacro %}

{% macro spark__string_agg(measure, delimiter, order_by) -%}
    listagg({{ measure }}, {{ delimiter }}) within group (order by {{ order_by }})
{%- endmacro %}

{#- A FROM item: rows `alias(column)` from `start` to `stop` (both included) by `step`; may refer
    to the FROM items before it. -#}
{% macro series(start, stop, alias, column, step=none) -%}
    {{ return(adapter.dispatch('series', 'covage')(start, stop, alias, column, step)) }}
{%- endmacro %}

{% macro default__series(start, stop, alias, column, step) -%}
    generate_series({{ start }}, {{ stop }}{% if step %}, {{ step }}{% endif %}) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__series(start, stop, alias, column, step) -%}
    lateral explode(sequence({{ start }}, {{ stop }}{% if step %}, {{ step }}{% endif %})) as {{ alias }} ({{ column }})
{%- endmacro %}

{#- A double-precision number type. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'covage')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{#- The text of a JSON scalar (a string element of an array or an object's value). -#}
{% macro json_scalar_text(column) -%}
    {{ return(adapter.dispatch('json_scalar_text', 'covage')(column)) }}
{%- endmacro %}

{% macro default__json_scalar_text(column) -%}
    ({{ column }} ->> '$')
{%- endmacro %}

{% macro postgres__json_scalar_text(column) -%}
    ({{ column }} #>> '{}')
{%- endmacro %}

{#- json_each on Spark yields the values as text already -#}
{% macro spark__json_scalar_text(column) -%}
    {{ column }}
{%- endmacro %}

{#- A lateral FROM item over a JSON array or object: rows (key, value) named `alias`.
    For an array, `key` is the element's position from 0 (as text). -#}
{% macro json_each(column, alias, key=none, array=false) -%}
    {{ return(adapter.dispatch('json_each', 'covage')(column, alias, key, array)) }}
{%- endmacro %}

{% macro default__json_each(column, alias, key, array) -%}
    json_each({{ column }}{% if key %}, '$."{{ key }}"'{% endif %}) as {{ alias }}
{%- endmacro %}

{% macro postgres__json_each(column, alias, key, array) -%}
    {%- set target = column ~ "::jsonb" ~ (" -> '" ~ key ~ "'" if key else "") -%}
    {%- if array -%}
    lateral (
        select (position - 1)::text as key, value
        from jsonb_array_elements(case when jsonb_typeof({{ target }}) = 'array' then {{ target }} end)
            with ordinality as elements (value, position)
    ) as {{ alias }}
    {%- else -%}
    lateral (
        select key, value
        from jsonb_each(case when jsonb_typeof({{ target }}) = 'object' then {{ target }} end)
    ) as {{ alias }}
    {%- endif -%}
{%- endmacro %}

{#- Spark: an object's values (or an array's elements) as text, nested ones as their JSON. -#}
{% macro spark__json_each(column, alias, key, array) -%}
    {%- set target = "get_json_object(" ~ column ~ ", '$." ~ key ~ "')" if key else column -%}
    {%- if array -%}
    lateral posexplode(from_json({{ target }}, 'array<string>')) as {{ alias }} (key, value)
    {%- else -%}
    lateral explode(from_json({{ target }}, 'map<string,string>')) as {{ alias }} (key, value)
    {%- endif -%}
{%- endmacro %}

{#- A timestamp read the way a person reads the operator's text: the normal form as is; the
    reference's `2017-04-22T10:12:00 AM.459593` as 10:12:00.459593 (a stray AM is ignored, a PM
    with an hour below 12 adds 12 hours; the same rule as covage_pipeline/timestamps.py for
    event_date); null where there is no sane reading (the raw text stays beside it). -#}
{% macro loose_timestamp(text) -%}
    {%- set pattern = "^(\\d{4})-(\\d{1,2})-(\\d{1,2})[T ](\\d{1,2}):(\\d{1,2})(?::(\\d{1,2}))?\\s*([AaPp][Mm])?\\s*(?:[.,](\\d{1,6}))?$" -%}
    {{ return(adapter.dispatch('loose_timestamp', 'covage')(text, pattern)) }}
{%- endmacro %}

{% macro default__loose_timestamp(text, pattern) -%}
    {#- The pattern first: a cast would read `2017-04-22T02:12:00 PM` as 02:12 (DuckDB ignores
        the PM); what the pattern does not cover (more than six fraction digits, say) is cast. -#}
    case
        when regexp_matches({{ text }}, '{{ pattern }}') then try(make_timestamp(
            cast(regexp_extract({{ text }}, '{{ pattern }}', 1) as integer),
            cast(regexp_extract({{ text }}, '{{ pattern }}', 2) as integer),
            cast(regexp_extract({{ text }}, '{{ pattern }}', 3) as integer),
            cast(regexp_extract({{ text }}, '{{ pattern }}', 4) as integer)
                + case when upper(regexp_extract({{ text }}, '{{ pattern }}', 7)) = 'PM'
                    and cast(regexp_extract({{ text }}, '{{ pattern }}', 4) as integer) < 12 then 12 else 0 end,
            cast(regexp_extract({{ text }}, '{{ pattern }}', 5) as integer),
            cast(coalesce(nullif(regexp_extract({{ text }}, '{{ pattern }}', 6), ''), '0') as double)
                + cast('0.' || rpad(coalesce(regexp_extract({{ text }}, '{{ pattern }}', 8), ''), 6, '0') as double)
        ))
        else try_cast({{ text }} as timestamp)
    end
{%- endmacro %}

{#- Spark: the same as DuckDB's; out-of-range parts give null (dbt-spark turns ANSI mode off). -#}
{% macro spark__loose_timestamp(text, pattern) -%}
    {%- set p = "r'" ~ pattern ~ "'" -%}
    case
        when {{ text }} rlike {{ p }} then make_timestamp_ntz(
            cast(regexp_extract({{ text }}, {{ p }}, 1) as integer),
            cast(regexp_extract({{ text }}, {{ p }}, 2) as integer),
            cast(regexp_extract({{ text }}, {{ p }}, 3) as integer),
            cast(regexp_extract({{ text }}, {{ p }}, 4) as integer)
                + case when upper(regexp_extract({{ text }}, {{ p }}, 7)) = 'PM'
                    and cast(regexp_extract({{ text }}, {{ p }}, 4) as integer) < 12 then 12 else 0 end,
            cast(regexp_extract({{ text }}, {{ p }}, 5) as integer),
            cast(cast(coalesce(nullif(regexp_extract({{ text }}, {{ p }}, 6), ''), '0') as double)
                + cast('0.' || rpad(coalesce(regexp_extract({{ text }}, {{ p }}, 8), ''), 6, '0') as double)
                as decimal(8, 6))
        )
        -- a date first: Spark reads words too ('yesterday', 'now') as timestamps
        when {{ text }} rlike r'^\d{4}-' then try_cast({{ text }} as timestamp_ntz)
    end
{%- endmacro %}

{% macro postgres__loose_timestamp(text, pattern) -%}
    {#- PostgreSQL has no try(): each part is range-checked (nested, so in order) first. Its regex
        engine is slow to capture groups in this pattern (0.1-0.2 ms a value), so the normal form
        is split by position after a capture-free match, and only other spellings go through the
        pattern; null text never enters the subquery. -#}
    {%- set normal_form = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,6})?$" -%}
    case when ({{ text }}) is not null then (
        select case
            when parts is null or parts[1]::int = 0 or parts[2]::int not between 1 and 12 then null
            when parts[3]::int not between 1 and extract(day from
                    make_date(parts[1]::int, parts[2]::int, 1) + interval '1 month - 1 day')
                or parts[4]::int > 23 or parts[5]::int > 59
                or coalesce(nullif(parts[6], ''), '0')::int > 59 then null
            else make_timestamp(
                parts[1]::int, parts[2]::int, parts[3]::int,
                parts[4]::int + case when upper(parts[7]) = 'PM' and parts[4]::int < 12 then 12 else 0 end,
                parts[5]::int,
                coalesce(nullif(parts[6], ''), '0')::double precision
                    + ('0.' || rpad(coalesce(parts[8], ''), 6, '0'))::double precision
            )
        end
        from (
            select case
                when value ~ '{{ normal_form }}' then array[
                    substr(value, 1, 4), substr(value, 6, 2), substr(value, 9, 2), substr(value, 12, 2),
                    substr(value, 15, 2), substr(value, 18, 2), null, nullif(substr(value, 21), '')
                ]
                else regexp_match(value, '{{ pattern }}')
            end as parts
            from (select {{ text }} as value) raw
            offset 0  -- a fence: else the planner copies `parts` into each of its 20 uses
        ) matched
    ) end
{%- endmacro %}

{#- Text in byte order, whatever the database's collation: rankings that break ties by text come
    out the same on every engine (DuckDB compares bytes by default). -#}
{% macro text_order(column) -%}
    {{ return(adapter.dispatch('text_order', 'covage')(column)) }}
{%- endmacro %}

{% macro default__text_order(column) -%}
    {{ column }}
{%- endmacro %}

{% macro postgres__text_order(column) -%}
    {{ column }} collate "C"
{%- endmacro %}

{#- A number as text with one decimal (`12.3`), for messages. -#}
{% macro one_decimal(value) -%}
    {{ return(adapter.dispatch('one_decimal', 'covage')(value)) }}
{%- endmacro %}

{% macro default__one_decimal(value) -%}
    printf('%.1f', {{ value }})
{%- endmacro %}

{% macro spark__one_decimal(value) -%}
    format_string('%.1f', cast({{ value }} as double))
{%- endmacro %}

{% macro postgres__one_decimal(value) -%}
    to_char({{ value }}, 'FM999999990.0')
{%- endmacro %}
