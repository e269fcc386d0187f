{#-
    An optional column of a source table: the column itself when the raw table has it, else a typed
    NULL under the same name. Lets the warehouse read a raw table written before the column was added
    to the contract (a missing optional column means "not delivered", not an error).

    The columns are looked up on the real source relation, found through the graph. Before execution
    (parse) the column is assumed present. In a unit test there is no graph and `source(...)` is a
    fixture CTE shaped after the real table, which may or may not have the column: there the column
    is always read as NULL, so a unit test of the model must not give it (test what depends on it
    downstream, e.g. in fct_orders).
-#}
{% macro optional_source_column(source_name, table_name, column_name, data_type) -%}
    {%- if source_has_column(source_name, table_name, column_name) -%}
        {{ column_name }}
    {%- else -%}
        cast(null as {{ data_type }}) as {{ column_name }}
    {%- endif -%}
{%- endmacro %}


{% macro source_has_column(source_name, table_name, column_name) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if graph.sources is not defined -%}
        {#- a unit test: see above -#}
        {{ return(false) }}
    {%- endif -%}
    {%- set matches = graph.sources.values()
        | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name)
        | list -%}
    {%- if matches | length != 1 -%}
        {{ exceptions.raise_compiler_error("unknown source " ~ source_name ~ "." ~ table_name) }}
    {%- endif -%}
    {%- set node = matches[0] -%}
    {%- set relation = adapter.get_relation(
        database=node.database, schema=node.schema, identifier=node.identifier
    ) -%}
    {%- if relation is none -%}
        {#- The table is missing altogether: let the query fail with the database's own message. -#}
        {{ return(true) }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return(column_name | lower in names) }}
{%- endmacro %}
