-- Every planned assignment (test and control) known to the warehouse build of the as-of month: the
-- plans designed in the months before it. In cycle M the design stage runs after the warehouse, so the
-- plan designed in M joins from the build of M + 1 on, and a rebuild of M sees what the original
-- build saw.
{%- set as_of_month = build_month() %}

with

source as (

    select * from {{ source('campaigns', 'campaign_plan') }}

),

renamed as (

    select
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(offer_id as {{ dbt.type_string() }}) as offer_id,
        cast(objective as {{ dbt.type_string() }}) as objective,
        cast(policy as {{ dbt.type_string() }}) as targeting_policy,
        cast({{ adapter.quote("group") }} as {{ dbt.type_string() }}) as treatment_group,
        cast(selection as {{ dbt.type_string() }}) as selection,
        cast(selection_probability as {{ dbt.type_float() }}) as selection_probability,
        cast(treatment_probability as {{ dbt.type_float() }}) as treatment_probability,
        cast(expected_incremental_profit as {{ dbt.type_float() }}) as expected_incremental_profit,
        cast(stratum as {{ dbt.type_string() }}) as stratum,
        cast(rank as {{ dbt.type_bigint() }}) as selection_rank,
        cast(designed_in_month as date) as designed_in_month,
        cast(delivery_month as date) as delivery_month

    from source

),

final as (

    select * from renamed
    where designed_in_month < {{ as_of_month_date(as_of_month) }}

)

select * from final
