{#- A generic test: no two rows share the same combination of `columns`. Written here so the
    project needs no package download (dbt deps needs the network, which CI may not have). -#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
