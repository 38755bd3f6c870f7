{#- Order event types that only carry messages or files: left out of stages and process variants
    (they do not move an order), kept everywhere else. Unknown types are left out too. -#}
{% macro non_lifecycle_event_types() -%}
    ('order-info', 'order-information-from-provider', 'order-cri')
{%- endmacro %}
