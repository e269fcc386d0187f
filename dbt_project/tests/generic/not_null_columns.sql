{#-
    Fails with one row per listed column that holds NULLs: the column's name and its number of NULL rows.

    dbt's built-in `not_null` is one test per column: one query (and one Dagster asset check) each. This
    test counts the NULLs of all of a model's required columns in one scan, count(*) - count(column), and
    reports every offending column at once. A `where` config filters the rows first, as for any data test.
-#}
{% test not_null_columns(model, columns) %}

with

null_counts as (

    select
        {%- for column in columns %}
        count(*) - count({{ column }}) as null_rows_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}

    from {{ model }}

),

by_column as (

    {%- for column in columns %}
    select
        '{{ column }}' as column_name,
        null_rows_{{ loop.index }} as null_rows

    from null_counts
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select * from by_column
where null_rows > 0

{% endtest %}
