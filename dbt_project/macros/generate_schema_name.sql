{#-
    Custom schemas are used verbatim (`+schema: marts` -> schema `marts`), without dbt's default
    `<target schema>_` prefix: the warehouse has exactly the schemas staging, intermediate, marts and reference.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
