{#
    A model's custom schema is used as is (`silver`, `gold`), not prefixed with the target's
    schema as dbt does by default (`main_gold`): the analysts' contract names the schemas.
    Models without a custom schema fall back to the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
