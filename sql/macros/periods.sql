{#- The two grains of the monthly statistics marts: each month of submission, and all months
    together (period = 'overall', submission_month null). Use with
    `group by grouping sets ((submission_month, ...), (...))`. -#}
{% macro period_and_month() -%}
    case when grouping(submission_month) = 1 then 'overall' else 'month' end as period,
    submission_month
{%- endmacro %}
