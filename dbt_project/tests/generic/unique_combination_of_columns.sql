{#- Fails for every combination of the given columns that occurs more than once (the grain of a table). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grain as (

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as n_rows

    from {{ model }}

    group by {{ combination_of_columns | join(', ') }}

)

select * from grain
where n_rows > 1

{% endtest %}
