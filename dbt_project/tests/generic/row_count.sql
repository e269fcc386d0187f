{#- Fails (one row) unless the model has exactly `expected` rows, e.g. a seed that must cover every case. -#}
{% test row_count(model, expected) %}

with

counted as (

    select count(*) as n_rows
    from {{ model }}

)

select * from counted
where n_rows <> {{ expected }}

{% endtest %}
