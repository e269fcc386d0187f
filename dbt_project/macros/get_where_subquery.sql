{#-
    dbt's `get_where_subquery` (dbt/include/global_project/macros/materializations/tests/where_subquery.sql),
    overridden in the project as dbt's documentation of the `where` config describes: a data test's `where`
    may name the month being built by the token `__build_month__`, replaced here, when the test runs, by that
    month as a SQL date (`as_of_month = __build_month__` -> `as_of_month = cast('2025-01-01' as date)`).

    dbt renders a test's `where` config while it parses the project, when the month is not known (and must not
    be: macros/as_of_month.sql says why), and with no access to the project's macros; this macro runs with
    the test. Otherwise it is dbt's default: no adapter the project uses (dbt-duckdb, dbt-spark) defines its
    own `<adapter>__get_where_subquery`.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__build_month__' in where -%}
            {%- set where = where | replace('__build_month__', as_of_month_date(build_month()) | trim) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
