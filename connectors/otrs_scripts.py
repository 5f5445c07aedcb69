"""Perl scripts `register` writes for the OTRS/Znuny admin: what the GenericInterface cannot do.

Why scripts: no web-service operation creates dynamic fields or reads customer companies.
Znuny 6.5 and 7 have `Admin::DynamicField::Import` for the fields, but OTRS CE 6.0 (and older
Znuny) has no such console command, and no version has a console command that lists
customer companies. Both scripts use only the core Perl API that OTRS 6.0 introduced and
Znuny kept (`Kernel::System::DynamicField::DynamicFieldAdd`, the SysConfig `SettingGet` /
`SettingLock` / `SettingUpdate` / `ConfigurationDeploy` calls `Admin::Config::Update` makes,
`Kernel::System::CustomerCompany`), checked against the OTRS 6.0 source and run against the
real Znuny 6.5 in CI (.ci/znuny-up.sh, tests/integration/test_znuny.py).

They run as the OTRS system user in the OTRS home (`cd /opt/otrs && su -s /bin/sh otrs -c
'perl /path/to/script.pl'`): the caches they write must belong to that user, as the console
insists too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_PRELUDE = r"""use strict;
use warnings;
use utf8;

BEGIN {
    die "run this in the OTRS home directory (where Kernel/Config.pm is)\n"
        if !-e 'Kernel/Config.pm';
    die "run this as the OTRS system user (e.g. otrs), not as root\n" if $> == 0;
}
use lib '.';
use lib './Kernel/cpan-lib';
use lib './Custom';

use Kernel::System::ObjectManager;

local $Kernel::OM = Kernel::System::ObjectManager->new(
    'Kernel::System::Log' => { LogPrefix => '__PREFIX__' },
);
"""

_FIELDS = r"""#!/usr/bin/perl
# ticketbill billing fields for OTRS 6.0 / Znuny (every version; Znuny 6.5 and 7 may use
# bin/otrs.Console.pl Admin::DynamicField::Import with the YAML file instead).
# Run as the OTRS system user in the OTRS home, e.g.
#   cd /opt/otrs && su -s /bin/sh otrs -c 'perl __PATH__'
# Creates the fields that are missing (existing ones are left as they are), shows them in the
# ticket zoom (ticket fields) and the note screen (the article field), then deploys.
__PRELUDE__
my $Definition = $Kernel::OM->Get('Kernel::System::JSON')->Decode( Data => <<'JSON' );
__DEFINITION__
JSON

my $DynamicFieldObject = $Kernel::OM->Get('Kernel::System::DynamicField');
for my $Field ( @{ $Definition->{Fields} } ) {
    my $Existing = $DynamicFieldObject->DynamicFieldGet( Name => $Field->{Name} );
    if ( ref $Existing eq 'HASH' && $Existing->{ID} ) {    # an unknown name gives {}
        print "present: $Field->{Name}\n";
        next;
    }
    my $ID = $DynamicFieldObject->DynamicFieldAdd(
        %{$Field},
        InternalField => 0,
        Reorder       => 0,
        ValidID       => 1,
        UserID        => 1,
    );
    die "could not create the dynamic field $Field->{Name} (see the OTRS log)\n" if !$ID;
    print "created: $Field->{Name}\n";
}

my $SysConfigObject = $Kernel::OM->Get('Kernel::System::SysConfig');
my @Changed;
for my $Name ( sort keys %{ $Definition->{Screens} } ) {
    my %Setting = $SysConfigObject->SettingGet( Name => $Name );
    die "OTRS has no setting $Name\n" if !%Setting;
    my %Value = ref $Setting{EffectiveValue} eq 'HASH' ? %{ $Setting{EffectiveValue} } : ();
    my @Missing = grep { ( $Value{$_} // '' ) ne '1' } @{ $Definition->{Screens}->{$Name} };
    next if !@Missing;
    $Value{$_} = 1 for @Missing;
    my $Lock = $SysConfigObject->SettingLock(
        DefaultID => $Setting{DefaultID},
        Force     => 1,
        UserID    => 1,
    );
    my %Result = $SysConfigObject->SettingUpdate(
        Name              => $Name,
        EffectiveValue    => \%Value,
        ExclusiveLockGUID => $Lock,
        UserID            => 1,
    );
    $SysConfigObject->SettingUnlock( DefaultID => $Setting{DefaultID} );
    die "could not update $Name: " . ( $Result{Error} // 'see the OTRS log' ) . "\n"
        if !$Result{Success};
    push @Changed, $Name;
    print "shown: " . join( ', ', @Missing ) . " in $Name\n";
}
if (@Changed) {
    my %Deployment = $SysConfigObject->ConfigurationDeploy(
        Comments      => 'ticketbill billing fields',
        UserID        => 1,
        Force         => 1,
        DirtySettings => \@Changed,
    );
    die "deploying the configuration failed (see the OTRS log)\n" if !$Deployment{Success};
}
print "done\n";
"""

_COMPANIES = r"""#!/usr/bin/perl
# ticketbill: the valid OTRS/Znuny customer companies as a `ticketbill customers import` file.
# Run as the OTRS system user in the OTRS home, e.g.
#   cd /opt/otrs && su -s /bin/sh otrs -c 'perl __PATH__' > customers.json
# Each company becomes {remote_id: CustomerID, legal_name, street, postcode, city, country};
# a company without a complete address is left out and named on stderr (fill it in in OTRS,
# or add it to the file). Add rates, VAT IDs and e-mail addresses before importing.
__PRELUDE__
use Locale::Country qw(country2code);
binmode STDOUT, ':encoding(UTF-8)';
binmode STDERR, ':encoding(UTF-8)';

my $CompanyObject = $Kernel::OM->Get('Kernel::System::CustomerCompany');
my %List = $CompanyObject->CustomerCompanyList( Valid => 1, Limit => 0 );
my @Customers;
for my $CustomerID ( sort keys %List ) {
    my %Company = $CompanyObject->CustomerCompanyGet( CustomerID => $CustomerID );
    my %Entry = (
        remote_id  => $CustomerID,
        legal_name => $Company{CustomerCompanyName} // '',
        street     => $Company{CustomerCompanyStreet} // '',
        postcode   => $Company{CustomerCompanyZIP} // '',
        city       => $Company{CustomerCompanyCity} // '',
    );
    my @Missing = grep { $Entry{$_} !~ /\S/ } qw(legal_name street postcode city);
    if (@Missing) {
        print STDERR "skipped $CustomerID: no " . join( ', ', @Missing ) . "\n";
        next;
    }
    my $Country = $Company{CustomerCompanyCountry} // '';
    if ( $Country =~ /\S/ ) {
        my $Code = country2code($Country);
        if ($Code) {
            $Entry{country} = uc $Code;
        }
        else {
            print STDERR "$CustomerID: country '$Country' has no ISO code; set \"country\"\n";
        }
    }
    push @Customers, \%Entry;
}
print $Kernel::OM->Get('Kernel::System::JSON')->Encode(
    Data     => { customers => \@Customers },
    SortKeys => 1,
    Pretty   => 1,
);
print STDERR scalar(@Customers) . " customer(s) exported\n";
"""


def _fill(template: str, path: str, prefix: str, definition: str = "") -> str:
    return (template.replace("__PRELUDE__", _PRELUDE.replace("__PREFIX__", prefix))
            .replace("__PATH__", path).replace("__DEFINITION__", definition))


def dynamic_fields_script(
    fields: Sequence[Mapping[str, Any]], screens: Mapping[str, Sequence[str]], path: str
) -> str:
    """The field script: `fields` as `DynamicFieldAdd` takes them, `screens` setting → names."""
    definition = json.dumps({"Fields": list(fields), "Screens": dict(screens)}, indent=2,
                            ensure_ascii=False, sort_keys=True)
    return _fill(_FIELDS, path, "ticketbill-dynamic-fields", definition)


def customer_companies_script(path: str) -> str:
    """The export of customer companies in the `ticketbill customers import` format."""
    return _fill(_COMPANIES, path, "ticketbill-customer-companies")
