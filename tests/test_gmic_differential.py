"""nnpipe against G'MIC 3.6.3 itself (the `gmic` package embeds the real interpreter).

Each case is a short script valid in both. It runs in G'MIC and in nnpipe (in-process); what
`echo` prints (line by line) and the final image list (count, names, sizes w,h,d,s and values
within 1e-5 relative) must agree, or both must stop with an error. A case whose first element
is a command file text defines custom commands: G'MIC reads it with `command FILE`, nnpipe as
the definitions after the script's main lines.

Where nnpipe deliberately differs, the case is listed in DELIBERATE with the reason, and the
test asserts nnpipe's own behaviour instead (the README's list of differences comes from it).

The cases were written for G'MIC 3.6.3: another version may read some of them differently,
which test_gmic_is_the_version_the_cases_were_written_for says first.
"""

import math
import os
import re
import tempfile

import gmic
import numpy as np
import pytest

from nnpipe.errors import UserError
from tests.conftest import REPO, run_script

# --- the language -------------------------------------------------------------------------------

ITEMS_AND_QUOTES = [
    "echo a=b",
    "loss=0.5 echo loss=$loss",
    "echo print",
    "echo done",
    "echo repeat",
    "echo w={1+2}",
    "echo a,b,c",
    "e hi",
    "echo",
    "echo hello world",  # `world` is an unknown command in both
    'echo "hello world"',
    'echo "3+4={3+4}"',
    'x=5 echo "x is $x"',
    's="hello world" echo [$s]',
    'echo "a"b',
    'echo "a,b"',
    'x=3 echo "x="$x',
    'echo "{"',
    's="a b" echo $s$s',
    'x="1,2" echo $x',
    '(1,2) echo "w={w}"',
    "(1,2) echo w={w}",
    'echo ""',
    'echo a""b',
    'x="" echo [$x]',
    'echo "#"',
    "echo a # a comment",
    "echo a#b",
    "echo $",
    "echo {1}{2}",
    "echo {1},{2}",
    "x=4 echo $x$x",
    "x=4 echo ${x}y",
    "x=4 echo $xy",
    "x=4 echo [$x]",
    "echo ${undefined}",
    "echo [$undefined]",
    "x=1,2,3 echo $x",
    "a=1 b=$a echo $b",
    "a=1 a=$a$a echo $a",
    "(1) (2) echo[] hi",
]

SELECTIONS = [
    "(1) (2) add[0,0] 10",
    "(1) (2) (3) add[2-1] 10",
    "(1) (2) (3) add[1-2] 10",
    "(1) (2) (3) keep[2,0]",
    "(1,2) (3) (4,5,6) append[2,0] x",
    "(1) (2) (3) add[^0] 10",
    "(1) (2) (3) add[^0,1] 10",
    "(1) (2) (3) add[-2--1] 10",
    "(1) (2) (3) add[-1] 10",
    "(1) (2) (3) add[0-1] 10",
    "(1) (2) (3) (4) (5) add[0-4:2] 10",
    "(1) (2) (3) add. 10",
    "(1) (2) (3) add.. 10",
    "(1) (2) (3) add... 10",
    "(1) (2) (3) add[0,-1] 10",
    "(1) (2) (3) add[5] 10",
    "(1) (2) (3) add[-4] 10",
    "(1) name a (2) name b add[a] 5",
    "(1) name a (2) name b add[a,b] 5",
    "(1) name a (2) name b (3) name a add[a] 5",
    "(1) name a add[zz] 5",
    "(1) name a (2) name b add[b,a,0] 5",
    "(1) (2) (3) rm[0]",
    "(1) (2) (3) rm[-1]",
    "(1) (2) (3) rm[0,2]",
    "(1) (2) (3) rm",
    "(1) (2) (3) rm.",
    "(1) (2) (3) keep[1]",
    "(1) (2) (3) k.",
    "(1) (2) (3) k[0,0]",
    "(1) (2) (3) remove[^1]",
    "(1) (2) (3) +add[1] 5",
    "(1) (2) (3) +add[2,0] 5",
    "(1) (2) +add 5",
    "(1) (2) (3) add[1--1] 10",
    "(1) (2) (3) add[0--2] 10",
    "(1) (2) (3) (4) add[^0-1] 10",
    "(1) (2) (3) (4) (5) (6) add[1-5:2] 10",
    "(1) (2) (3) (4) keep[-1,0]",
    "(1) (2) (3) (4) rm[1-2]",
    "(1) name a (2) name b (3) name c keep[c,a]",
    "(1) name a (2) name b (3) name c rm[b]",
    "(1) name a (2) name a (3) rm[a]",
    "(1) (2) (3) (4) append[3,1] x",
    "(1) (2) (3) (4) append[^1] y",
]

NAMES_AND_COPIES = [
    "(1) (2) (3) name foo",
    "(1) (2) (3) name a,b",
    "(1) (2) (3) name a,b,c",
    "(1) (2) (3) nm foo",
    "(1) (2) (3) name[0-2] a,b",
    "(1) (2) (3) name[0,2] a",
    "(1) (2) (3) name. last",
    "(1) (2) (3) name[0] first",
    '(1) name "a b"',
    "(1) name a +add 1",
    "(1) name a +add 1 add[a] 10",
    "(1) name a [a] [a]",
    "(1) name a input [a]",
    "(1) name a_c1 +add 1",
    "(1) name a +add 1 +add[1] 1",
    "1,1 name foo +add 1 +add[0] 1 [0] (1) +add 1",
    "(1,2) (3) [0]x2",
    "(1) [0] [0]",
    "(1) (2) [0,1]",
    "(1) (2) [-1]",
    "(1) name a (2) name b [a,b] add[a] 10",
]

VARIABLES = [
    "x=3 echo $x",
    "x=3 echo ${x}",
    "x=3 x+=2 echo $x",
    "x=3 x-=2 echo $x",
    "x=3 x*=2 echo $x",
    "x=3 x/=2 echo $x",
    "x=7 x%=3 echo $x",
    "x=3 x^=2 echo $x",
    "x=a x.=b echo $x",
    "x:=2+3 echo $x",
    "x=2 y:=$x*4 echo $y",
    "x:=1/3 echo $x",
    "x:=[1,2,3] echo $x",
    "a,b=1,2 echo $a$b",
    "a,b,c=1,2 echo [$a][$b][$c]",
    "x=1 x=2 echo $x",
    "x=3 x+=0.5 echo $x",
    "x=1e3 echo $x",
    "x:=1e3 echo $x",
    "x:=2^40 echo $x",
    "x:=1e15 echo $x",
    "x:=1e16 echo $x",
    "x:=-0.5 echo $x",
    "x:=0.1+0.2 echo $x",
    "_g=glob echo $_g",
    "(1,2,3) n:=w echo $n",
    "x=5 echo ${x=7}",
    "echo ${1=def}",
    "(1) (2) echo $!",
    "echo $!",
    "(1) rm echo $!",
    "echo $#",
    "repeat 3,k echo $k done",
    "repeat 2,k repeat 2,j echo $k$j done done",
    "repeat 3,k done echo [$k]",
    "x=3 echo ${x}{$x+1}",
    "a=1 b=2 c=3 echo $a,$b,$c",
    "x=hello y=${x}_world echo $y",
    "x=2 x:=$x^10 echo $x",
    "x:=nan echo $x",
    "x:=inf echo $x",
    "x:=-inf y:=$x+1 echo $y",
    "x=nan if $x>=0.01 echo big else echo not fi",
    "x=5 x+=1 x*=2 echo $x",
    "x=[1,2] echo $x",
    "x:=round(2.5) echo $x",
    "X=1 x=2 echo $X$x",
    "x_1=7 echo $x_1",
]

DEFINITIONS = [  # (command file, script)
    ("hi : echo hi", "hi"),
    ("hi : echo hi", "hi hi"),
    ("peek : echo [$x]", "x=outer peek"),
    ("peek : echo [$_x]", "_x=outer peek"),
    ("setx : x=inner", "x=outer setx echo $x"),
    ("setg : _g=inner", "_g=outer setg echo $_g"),
    ("showargs : echo $1,$2,$#", "showargs a,b"),
    ("showargs : echo $1,$2,$#", "showargs a,b,c"),
    ("showargs : echo [$*]", "showargs a,b,c"),
    ("showargs : echo ${1=def}", "showargs"),
    ("showargs : echo ${1=def}", "showargs given"),
    ("showargs : echo ${2=def}", "showargs a"),
    ("showargs : echo $0", "showargs 1"),
    ("showargs : echo $1", 'show "a b"'),
    ("showargs : echo $1", "showargs {1+2}"),
    ("twice : echo $1 echo $1", "twice x=y"),
    ("add2 : add 2", "(1) (2) add2"),
    ("mk : (7) name seven", "mk echo $!"),
    ("count : echo $!", "(1) (2) count"),
    ("loop : repeat 2 echo $> done", "repeat 2 loop done"),
    ("inner : echo $>", "repeat 2 inner done"),
    ("st : u 42", "echo ${-st}"),
    ("st : u $1", 'echo ${"-st abc"}'),
    ("st : u a,b", "echo ${-st}"),
    ("multi :\necho one\necho two", "multi"),
    ("first : echo 1\nsecond : echo 2", "second first"),
    ("outer : inner echo out\ninner : echo in", "outer"),
    ("ret : u $1", "ret 5 echo ${}"),
]

MORE_DEFINITIONS = [  # recursion, return, arguments inside quotes, $* passed on
    ("countdown : if $1>0 echo $1 countdown {$1-1} fi", "countdown 3"),
    ("pass_all : inner $*\ninner : echo [$1][$2]", "pass_all a,b"),
    ("hi : echo hi", "-hi"),
    ("early : echo a return echo b", "early echo after"),
    ("fail : error nope", "fail"),
    ("addall : add $1", "(1) (2) addall 5"),
    ("mk : (1,2) name made", "mk mk echo $!"),
    ("double : mul 2", "(1,2) (3) double"),
    ("last : echo {w}", "(1,2,3) last"),
    ("nth : echo {$1,w}", "(1,2,3) (4) nth 0"),
    ("setst : u $1,$2", "echo ${-setst\\ a,b}"),
    ('a2 : echo "$1"', "a2 hello"),
    ("qq : echo $1", 'qq "a,b"'),
    ("qq : echo $1/$2", 'qq "a,b",c'),
    ("loopy : repeat $1 echo $> done", "loopy 2 loopy 1"),
    ("nested : repeat 2 inner2 done\ninner2 : repeat 2 echo $> done", "nested"),
    ("vars : a=1 b=$a echo $a$b", "vars echo [$a]"),
    ("g1 : _count+=1", "_count=0 g1 g1 g1 echo $_count"),
    ("argc : echo $#", "argc argc a argc a,b,c"),
    ("defaults : echo ${1=x},${2=y},${3=z}", "defaults 1,,3"),
    ("star : echo $*", 'star "a b",c'),
    ("zero : echo $0", "zero zero"),
    ("dollar : echo $1$1", "dollar ab"),
    ("brace : echo ${1}x", "brace ab"),
    ("cond : if $1 echo yes else echo no fi", "cond 1 cond 0"),
    ("cond : if {$1>2} echo big fi", "cond 5 cond 1"),
    ("multi :\n  echo one\n  echo two", "multi"),
    ("multi : echo one\n  echo two", "multi"),
    ("comment : echo a # trailing\n# full line\n  echo b", "comment"),
    ('ff : echo "$1|$*|$#|$0|{1+1}|$x"', "x=3 ff a"),
    ('ff : echo "${1=d}|${2=e}"', "ff a"),
    ('ff : echo "$1"', 'ff "a b"'),
    ("ff : echo $1", 'ff "a b"'),
    ("ff : echo $1", 'ff "a,b"'),
    ("ff : echo [$1]", 'ff "a",b'),
    ("ff : echo [$2]", 'ff "a",b'),
    ('ff : echo "[$1]"', "ff a,b"),
    ('ff : echo "a $1 b"', "ff x"),
    ('ff : echo "$>"', "repeat 2 ff 1 done"),
    ('ff : u "$1" echo ${}', "ff 5"),
    ("ff : echo $-1/$-2/${-1}", "ff a,b,c"),
    ("_helper : u 42", "echo ${-_helper}"),
    ("_helper : u {$1*2}", "echo ${-_helper\\ 21}"),
    ("ff : echo {$-1+1}", "ff 1,2,3"),
    ('ff : echo "$-1"', "ff 1,2,3"),
]

MULTI_LINE = [  # command files: comments, continuations, quotes over several lines
    ("main :\necho a\necho b", "main"),
    ("main :\n  echo indented\n  echo body", "main"),
    ("main :\necho \\\nhello", "main"),
    ("main :\nx=3 # a comment\necho $x", "main"),
    ("main :\n# a whole line of comment\necho a#b", "main"),
    ('main :\n(1,2) fill "x+\n1"', "main"),
    ("main :\n(1,2) eval \"\nA = i(1);\nend(set('v',A))\"\necho $v", "main"),
    ("main :\nrepeat 2 {\necho L{$>+2},L{$>+1}\n}", "main"),
    ('main :\n1,1,1,1 fill "A = 3; # a comment\nA*2"', "main"),
    ('main :\n(1,2,3) eval. "\nS = i(0);"\\\n"S += i(2);"\\\n"end(set(\'v\',S))"\necho $v', "main"),
    ("main :\nrepeat inf {\nif $>==2 break fi\necho $>\n}", "main"),
    ("main :\nrepeat 3 {\n  repeat 2 {\n    echo $>\n  }\n}", "main"),
    (
        "main :\nbest_loss=inf\nview_iter=-inf\nloss=0.5 iter=3\n"
        'if $loss<$best_loss*1.25" && "$iter>$view_iter+100\necho shown\nview_iter=$iter\nfi\n'
        "best_loss:=min($best_loss,$loss)\necho $best_loss,$view_iter",
        "main",
    ),
    ("main :\nN=6\nrepeat $N { echo L{$>+2},L{$>+1} }\necho L{$N+1}", "main"),
    ("alpha :\necho in_a\nbeta :\necho in_b\nmain :\nbeta alpha", "main"),
    ("main :\n(1,2;3,4) r. 4,4,1,3,0,0,0.5,0.5", "main"),
]

FILE_LAYOUT = [  # CRLF, tabs, blank lines, comments before a definition, `name:`
    ("main :\r\necho a\r\necho b\r\n", "main"),
    ("main :\n\techo\ttab", "main"),
    ("main :\necho a \\  \nb", "main"),
    ('main :\necho "a\nb"', "main"),
    ("main : echo one ; echo two", "main"),
    ("main :\n  echo x # c\n\n\n  echo y", "main"),
    ("#@cli main : help\nmain :\necho ok", "main"),
    ("main:\necho nospace", "main"),
    ("main :\nrepeat 2 echo $>\ndone", "main"),
]

STATUS = [
    "u abc echo ${}",
    "u 12 echo ${}",
    "status 3 echo ${}",
    "u a,b echo ${}",
]

CONTROL = [
    "repeat max(2,3) echo $> done",
    "repeat 3 echo $> done",
    "repeat 3 echo $< done",
    "repeat 0 echo x done",
    "repeat 2 repeat 2 echo $> done done",
    "repeat 2 repeat 3 echo $< done done",
    "repeat 3 { echo x }",
    "repeat {1+1} echo x done",
    "n=2 repeat $n echo x done",
    "i=0 do i+=1 while $i<3 echo $i",
    "i=0 do echo $i i+=1 while $i<3",
    "do echo once while 0",
    "if 1 echo y else echo n fi",
    "if 0 echo y else echo n fi",
    "if 0 echo y fi echo after",
    "if {1<2} echo y fi",
    "if 1<2 echo y fi",
    "a=1 b=2 if $a<$b echo lt fi",
    "a=3 b=2 if $a<$b echo lt else echo ge fi",
    "a=2 if $a==1 echo one elif $a==2 echo two else echo other fi",
    "a=5 if $a==1 echo one elif $a==2 echo two else echo other fi",
    "a=1 if $a==1 echo one elif $a==2 echo two else echo other fi",
    'a=2 if $a<3" && "$a>1 echo ok fi',
    "a=2 if $a<3&&$a>1 echo ok fi",
    "if 0 echo a elif 0 echo b fi echo c",
    "if 1 if 0 echo a else echo b fi fi",
    "repeat 5 if $>==2 break fi echo $> done",
    "repeat 3 if $>==1 continue fi echo $> done",
    "repeat 3 echo $> break done echo after",
    "i=0 do i+=1 if $i==2 break fi while 1 echo $i",
    "repeat 4 x=$> done echo $x",
    "(1,2,3) repeat w echo {i($>)} done",
    "repeat 2 (1) done echo $!",
    "if nan echo y else echo n fi",
    "if 2 echo y fi",
    "if -1 echo y fi",
    "if 0.5 echo y fi",
    "repeat 3 done echo end",
    "if 1 fi",
    "repeat 2 echo a",
    "echo a done",
    "fi",
]

INPUT = [
    "(1,2,3)",
    "(1;2)",
    "(1/2)",
    "(1^2)",
    "(1,2;3,4^5,6;7,8)",
    "(1,2;3,4/5,6;7,8)",
    "input (1,2)",
    "i (3)",
    "(1,2) input [0]",
    "2,3",
    "2,3,1,2",
    "2,3,1,2,5",
    "4",
    "2,2,2",
    "input 2,2,1,1,x+y",
    'input 2,2,1,1,"x+y"',
    '2,2,1,1,"x+y"',
    '3,2,1,2,"x+10*y+100*c"',
    '2,2,1,3,"[1,2,3]"',
    '2,1,1,3,"[x,y,c]"',
    '2,2,1,2,"[x+1,y+1]"',
    '2,1,1,1,"w+h"',
    '(1,2,3,4) 2,2,1,1,"i(#0,x+2*y)"',
    '(1,2;3,4) 2,2,1,1,"i(#0,y,x)"',
    "(1,2",
]

FILL = [
    "2,2 fill 7",
    "2,2 fill 1,2,3,4",
    "2,2 fill 1,2",
    "3,1 fill 1,2,3,4,5",
    "2,2,1,2 fill 1,2,3,4,5,6,7,8",
    '2,2 fill "x+y"',
    "2,2 fill x+y",
    '2,2 f "x*2"',
    '2,2 +fill "x*2"',
    '2,2,1,3 fill "[x,y,c]"',
    '2,2,1,3 fill "c"',
    '2,2,1,2 fill "[1,2]"',
    '(1,2;3,4) fill "i*10"',
    '(1,2;3,4) fill "i(x,y)+1"',
    '(1,2;3,4) fill "i(1-x,y)"',
    '(1,2;3,4) fill "i(x+1,y)"',
    '(1,2^3,4) fill "i0+i1"',
    '(1,2^3,4) fill "I"',
    '(1,2^3,4) fill "[i1,i0]"',
    '(1,2^3,4) fill "sum(I)"',
    '(1,2) (5,6) fill[0] "i(#1,x)"',
    '(1,2) (5,6,7) fill[0] "w#1"',
    '(1,2) (5,6) fill "i(#0,x)*2"',
    '4,1 fill "x%2?5:6"',
    '4,1 fill "A=x*2; A+1"',
    '(1,2,3) fill "i(x-1)"',
    '(1,2,3) fill "i(x)+i(x+1)"',
    '2,2,1,1 fill "[1,2]"',
    '(1,2) (3,4) fill[0,1] "x+1"',
]

RESIZE = (
    [f"(0,10) resize 5,1,1,1,{mode}" for mode in range(7)]
    + [f"(1,2,3,4,5,6) resize 2,1,1,1,{mode}" for mode in range(7)]
    + [f"(1,2;3,4) resize 3,3,1,1,{mode}" for mode in range(7)]
    + [f"(1,2,3;4,5,6;7,8,9) resize 2,2,1,1,{mode}" for mode in range(7)]
    + [f"(1,2,3,4,5) resize 50%,1,1,1,{mode}" for mode in (1, 2, 3, 5)]
    + [
        "(1,2,3,4,5,6) resize 2",
        "(1,2,3,4,5,6) r 4",
        "(1,2,3,4,5) resize 50%",
        "(1,2,3,4,5) resize 200%",
        "(1,2;3,4) resize 200%,100%",
        "(1,2;3,4) resize 200%,200%,1,1,3",
        "(1,2;3,4) resize 3,3",
        "(1,2;3,4) resize 2,2,1,3",
        "(1,2;3,4) resize 2,2,1,3,1",
        "(1,2^3,4) resize 2,1,1,1",
        "(1,2^3,4) resize 2,1,1,1,3",
        "(1,2;3,4) resize 4,4,1,1,0",
        "(1,2;3,4) resize 4,4,1,1,0,0,0.5,0.5",
        "(1,2;3,4) resize 4,4,1,1,0,0,1,1",
        "(1,2;3,4) resize 5,5,1,1,0,0,0.5,0.5",
        "(1,2;3,4) resize 1,1,1,1,0",
        "(1,2,3) resize 5,1,1,1,0,1",
        "(1,2,3) resize 4,1,1,1,3,1",
        "(1,2,3) resize 2,1,1,1,3,1",
        "(1,2;3,4) r. 4,4,1,1,0,0,0.5,0.5",
        "(1,2;3,4) resize 3,3,1,1,1,0,0.5,0.5",
        "(1,2,3) (4,5) resize[0] 4,1,1,1,1",
        "(1,2,3) resize 0,1",
        "(1,2,3,4) resize 3,1,1,1,4",
        "(1,2,3,4) resize 7,1,1,1,4",
        "(1,2,3,4) resize 7,1,1,1,5",
        "(1,2,3,4) resize 7,1,1,1,6",
        "(1,2,3,4,5,6,7,8) resize 3,1,1,1,2",
        "(1,2,3,4,5,6,7,8) resize 3,1,1,1,5",
        '6,5,3,2,"cos(x*1.3+y*2.1+c*0.7+z)*100+128" resize 3,8,2,1,2',
    ]
)

IMAGE_COMMANDS = [
    "(1,2,3) normalize 0,1",
    "(1,2,3) normalize 1,0",
    "(1,2,3) n 0,255",
    "(3,3,3) normalize 0,1",
    "(1,3,2) normalize 10,20",
    "(1,3,2) normalize -1,1",
    "(1,2,3;4,5,6) normalize 0,1",
    "(1,2,3) (5,7) normalize 0,1",
    "(1,2,3,4) crop 1,2",
    "(1,2;3,4) crop 0,0,0,1",
    "(1,2,3;4,5,6;7,8,9) crop 1,1,2,2",
    "(1,2,3;4,5,6;7,8,9) crop 0,1,2,1",
    "(1,2,3;4,5,6;7,8,9) crop 2,2,1,1",
    "(1,5,10) cut 2,8",
    "(1,5,10) cut 8,2",
    "(1,2) (3,4) append x",
    "(1,2) (3,4) append y",
    "(1,2) (3,4) append c",
    "(1,2) (3,4) append z",
    "(1,2) (3,4,5) append x",
    "(1,2) (3,4,5) append y",
    "(1;2) (3;4;5) append x",
    "(1,2) (3,4) (5) append[0,2] x",
    "(1,2) append x",
    "(1,2) add 3",
    "(1,2) sub 3",
    "(1,2) mul 3",
    "(1,2) div 4",
    "(1,2) div 0",
    "(1,2) add -1.5",
    "(1,2) (3,4) add[0] [1]",
    "(1,2) (3,4) add",
    "(1,2) (3,4) mul",
    "(1,2) +mul 2",
    "(1,2) +div 2",
    "(1,2) (1,3) psnr[0] [1] echo ${}",
    "(1,2) (1,3) psnr[0] [1],1 echo ${}",
    "(1,2) (1,2) psnr[0] [1] echo ${}",
]

# G'MIC's image commands around its trained networks (denoise_cnn, scale2x_cnn): patches, colour
# modes and spaces, ranges along an axis, the Laplacian and the noise estimate
PHOTO = REPO / "examples" / "data" / "astronaut256.png"
RAMP3 = '7,5,1,3,"cos(x*1.3+y*2.1+c*0.7)*100+sin(x*y)*50+128" name ramp'  # deterministic RGB
RAMP_VOLUME = '6,5,3,2,"cos(x*1.3+y*2.1+c*0.7+z)*100+128" name volume'  # 3D, gray + opacity
PATCHES = (
    [
        "(1,2,3;4,5,6) img2patches 2",
        "(1,2,3;4,5,6) img2patches 2.0",
        "(1,2,3;4,5,6) img2patches 2,1.7",
        "(1,2,3;4,5,6) img2patches 2,2",
        "(1,2,3;4,5,6) img2patches 3,100%",
        "(1,2,3;4,5,6) img2patches 3,49%",
        "(1,2,3;4,5,6) img2patches 0",
        "(1,2,3;4,5,6) img2patches 2.5",
        "(1,2,3;4,5,6) img2patches 2,-1",
        "(1,2,3;4,5,6) img2patches 2,0,4",
        "(1,2,3;4,5,6) img2patches 2,0,mirror",
        "(1,2,3;4,5,6) img2patches",
        "(1,2,3;4,5,6) name a +img2patches 4,1,1",
        "(1,2/3,4) img2patches 2",
        "(1,2,3) (4;5) img2patches 2,1,1",
        '11,9,1,1,"x+20*y" img2patches 8,25%,2',
    ]
    + [f"{RAMP3} img2patches 4,1,{boundary}" for boundary in range(4)]
    + [
        "(1,2,3;4,5,6) img2patches 2 patches2img 3,2",
        "(1,2,3;4,5,6) img2patches 2 patches2img 3",
        "(1,2,3;4,5,6) img2patches 2 patches2img 0,2",
        "(1,2,3;4,5,6) img2patches 2 patches2img 2.5,2",
        "(1,2,3;4,5,6) img2patches 2 patches2img 3,2,1,-2",
        "(1,2,3;4,5,6) img2patches 2 patches2img 3,2,1,-1",
        "(1,2,3;4,5,6) img2patches 2 patches2img 3,2,1,0",
        "(1,2,3;4,5,6) img2patches 2,1 patches2img 3,2,1,50%",
        "(1,2,3;4,5,6) img2patches 2,1 patches2img 3,2,1,1e9",
        "(1,2,3;4,5,6) img2patches 2,1 patches2img 5,5,1",
        "(1,2,3;4,5,6) img2patches 2,1 patches2img 2,1,1",
        "(1,2,3;4,5,6) patches2img 3,2",
        "(1,2;3,4) patches2img 3,3,50%,10%",
        "(1,2;3,4) patches2img 3,3,2",
        "(1,2;3,4) name p +patches2img 3,3,1",
        f"{RAMP3} img2patches 4,25%,3 patches2img 7,5,25%,50%",
        f"{RAMP3} img2patches 4,2,1 cut 50,200 patches2img 7,5,2,1.5",
        f"{RAMP3} img2patches 3,0,3 patches2img 7,5",
        f"input {PHOTO} name photo img2patches 64,16,3",
        f"input {PHOTO} name photo img2patches 64,16,3 patches2img 256,256,16,50%",
        f"input {PHOTO} name photo img2patches 32,8,3 patches2img 256,256,8",
    ]
)
COLORS = [
    f"{RAMP3} channels 0,{channels - 1} {command}"
    for channels in (1, 2, 3, 4, 5)
    for command in ("to_rgb", "to_rgba", "to_color", "split_opacity", "rgb2ycbcr", "ycbcr2rgb")
] + [
    f"{RAMP_VOLUME} to_rgb",
    f"{RAMP_VOLUME} to_rgba",
    f"{RAMP_VOLUME} to_color",
    f"{RAMP_VOLUME} rgb2ycbcr",
    f"{RAMP_VOLUME} channels 0 to_color",
    "(1^2^3^4) name a (5^6) name b +split_opacity[1,0]",
    "(1^2^3^4) name a (5^6) name b (7) split_opacity",
    "(1^2^3^4) name a (5^6) name b split_opacity[1]",
    f"{RAMP3} mix_rgb 0.299,0.587,0.114,1,2,3,-1.5,0,0.25",
    f"{RAMP3} mix_rgb 2",
    f"{RAMP3} mix_rgb",
    f"{RAMP3} channels 0 mix_rgb 2,1",
    f"{RAMP3} +rgb2ycbcr ycbcr2rgb.",
    f"input {PHOTO} name photo rgb2ycbcr",
    f"input {PHOTO} name photo rgb2ycbcr ycbcr2rgb",
    f"input {PHOTO} name photo to_rgba split_opacity",
]
AXIS_RANGES = [
    "(1^2^3^4) channels 1.6",
    "(1^2^3^4) channels 1.5",
    "(1^2^3^4) channels 2.5",
    "(1^2^3^4) channels 50%",
    "(1^2^3^4) channels -0.5,0,1",
    "(1^2^3^4) channels -1.5,-0.4,1",
    "(1^2^3^4) channels 3,0",
    "(1^2^3^4) channels -2,5,3",
    "(1^2^3^4) channels -2,5,2",
    "(1^2^3^4) channels -2,5,1",
    "(1^2^3^4) channels abc",
    "(1^2^3^4) channels 1,2,4",
    "(1^2^3^4) channels 1,2,1.5",
    "(1^2^3^4) channels",
    "(1^2^3^4) channels 1,",
    "(1^2^3^4) channels 1,2,3,4",
    "(1^2^3^4) +channels 1",
    "(1,2,3) columns 1,5,1",
    "(1,2,3) columns -50%,150%,3",
    "(1,2,3;4,5,6) rows 1,0",
    "(1,2,3;4,5,6) rows 2,-1,2",
    "(1,2;3,4/5,6;7,8) slices 1",
    "(1,2;3,4/5,6;7,8) +slices 50%,100%",
    f"{RAMP_VOLUME} slices 50%",
    "(1,2,3,4,5,6;7,8,9,10,11,12) resize 3,4,1,1,2",
    "(1,2,3,4,5,6;7,8,9,10,11,12) resize 8,1,1,1,2",
    f"input {PHOTO} name photo resize 50%,50%,1,100%,2 resize 200%,200%,1,100%,3",
]
DRAW = [  # image (j): placements, opacity (-1 adds), opacity masks, clipping
    "(1,2,3;4,5,6) (10,20) j[0] [1],1,1",
    "(1,2,3;4,5,6) (10,20) j[0] [1],1,1,0,0,-1",
    "(1,2,3;4,5,6) (10,20) j[0] [1],1,0,0,0,0.3",
    "(1,2,3;4,5,6) (10,20) j[0] [1],0,0,0,0,2",
    "(1,2,3;4,5,6) (10,20) image[0] [1],50%,100%",
    "(1,2,3;4,5,6) (10,20) j[0] [1],1%,0",
    "(1,2,3;4,5,6) (10,20) j[0] [1],1.5,0",
    "(1,2,3;4,5,6) (10,20) j[0] [1],2.5,0",
    "(1,2,3;4,5,6) (10,20) j[0] [1],-0.5,0",
    "(1,2,3;4,5,6) (10,20) j[0] [1],-1~,0",
    "(1,2,3;4,5,6) (10,20) j[0] [1],0.5~,0~",
    "(1,2,3;4,5,6) (10,20) j[0] [0],1,0",
    "(1,2,3;4,5,6) (10,20) j. ..",
    "(1,2,3;4,5,6) (10,20) (3) j[0,1] [2],1,0",
    "(1,2,3;4,5,6) (10,20) +j[0] [1],1,0",
    "(1,2,3;4,5,6) (10,20^30,40) j[0] [1]",
    "(1,2,3;4,5,6^7,8,9;10,11,12) (10,20) j[0] [1],0,0,0,1",
    "(1,2,3;4,5,6^1,1,1;1,1,1) (10,20^30,40) (0.5,1^0,0.25) j[0] [1],0,0,0,0,1,[2]",
    "(1,2,3;4,5,6^1,1,1;1,1,1) (10,20^30,40) (0.5,1) j[0] [1],0,0,0,0,-2,[2]",
    "(1,2,3;4,5,6^1,1,1;1,1,1) (10,20^30,40) (0.5,1) j[0] [1],-1,0,0,-1,1,[2]",
    "(1,2,3;4,5,6) (10,20) (0.5,1) j[0] [1],0,0,0,0,-1,[2],2",
    "(1,2,3;4,5,6) (10,20) (0.5,1) j[0] [1],1,1,0,0,1,[2],0",
    "(1,2,3;4,5,6) (10,20) (0.5,1,2) j[0] [1],0,0,0,0,1,[2]",
    "(1,2,3;4,5,6) (10,20) j[0] [1],0,0,0,0,1,[5]",
    "(1,2,3;4,5,6) (10,20) j[0] [1],a",
    "(1,2,3;4,5,6) (10,20) j[0] 5",
    "(1,2,3;4,5,6) (10,20) j[0]",
    f"input {PHOTO} name photo rgb2ycbcr +r 200%,200%,1,100%,3 channels.. 0 +r.. 200%,200%,1,1,5"
    " j. ..,0,0,0,0,-1 j.. .",
]
NOISE = [
    "(1,5,2,8,3;4,4,9,1,0) std_noise echo ${}",
    "std_noise echo ${}",
    "(1,5,2,8,3;4,4,9,1,0) (1,2) std_noise echo ${}",
    "(1,5,2,8,3;4,4,9,1,0) (1,2) std_noise[0] echo ${}",
    "(1,5,2,8,3;4,4,9,1,0) (1,2) +std_noise[0] echo ${}",
    "(1,5,2,8,3;4,4,9,1,0) std_noise[] echo ${}",
    "(1,5,2,8,3;4,4,9,1,0) echo ${-std_noise}",
    "(1,5;2,8/3,4;4,9/1,0;7,7) std_noise echo ${}",
    "(1,5,2^8,3,4^4,9,1) std_noise echo ${}",
    '16,12,1,3,"cos(x*1.3+y*2.1+c*0.7)*100" std_noise echo ${}',
    '16,12,3,2,"cos(x*1.3+y*2.1+c*0.7+z)*100" std_noise echo ${}',
    f"input {PHOTO} name photo std_noise echo ${{}}",
    "(1,5,2;8,3,4) laplacian",
    "(1,5;2,8/3,4;4,9) +laplacian",
    f"{RAMP_VOLUME} laplacian",
    f"input {PHOTO} name photo laplacian",
]

# --- expressions ----------------------------------------------------------------------------------

SCALAR_EXPRESSIONS = [
    "1+2",
    "2*3+4",
    "2+3*4",
    "(2+3)*4",
    "7/2",
    "1/3",
    "-2^2",
    "2^3^2",
    "(-2)^2",
    "-2*-3",
    "2^-1",
    "2^0.5",
    "7%3",
    "-7%3",
    "7%-3",
    "-7%-3",
    "7.5%2",
    "5%0",
    "1/0",
    "-1/0",
    "0/0",
    "round(2.5)",
    "round(-2.5)",
    "round(0.5)",
    "round(1.5)",
    "round(-0.5)",
    "round(2.4)",
    "round(3.14159,0.01)",
    "round(7,5)",
    "floor(-1.5)",
    "ceil(-1.5)",
    "floor(2.7)",
    "ceil(2.1)",
    "abs(-3)",
    "abs(3)",
    "sqrt(16)",
    "sqrt(2)",
    "sqrt(-1)",
    "exp(1)",
    "exp(0)",
    "log(1)",
    "log(e)",
    "log(0)",
    "log(-1)",
    "log2(8)",
    "log10(1000)",
    "sin(0)",
    "cos(0)",
    "tan(0)",
    "sin(pi/2)",
    "cos(pi)",
    "atan2(1,1)",
    "atan2(-1,-1)",
    "atan2(0,-1)",
    "atan(1)",
    "min(3,1,2)",
    "max(3,1,2)",
    "min(-1,nan)",
    "max(2)",
    "min(5,2)",
    "cut(5,0,3)",
    "cut(-1,0,3)",
    "cut(2,0,3)",
    "lerp(0,10,0.25)",
    "lerp(2,4,2)",
    "sign(-3)",
    "sign(0)",
    "sign(2)",
    "pow(2,10)",
    "pow(2,0.5)",
    "pow(-8,1/3)",
    "1<2",
    "2<1",
    "1<=1",
    "1>=2",
    "2>1",
    "1==1",
    "1!=1",
    "1==1.0",
    "1&&0",
    "1||0",
    "0||0",
    "!0",
    "!5",
    "!!5",
    "1&&nan",
    "1?2:3",
    "0?2:3",
    "1<2?10:20",
    "0?1:0?2:3",
    "nan",
    "inf",
    "-inf",
    "nan==nan",
    "inf>1e308",
    "inf-inf",
    "-nan",
    "pi",
    "e",
    "1e3",
    "1.5e-3",
    "2e20",
    "1e15",
    "1e16",
    "123456789012",
    "0.1+0.2",
    "1/3*3",
    "-0",
    "0*-1",
    "3-5",
    "--3",
    "+3",
    "2*(3+(4-1))",
    "10/4*2",
    "2^2*3",
    "-2^0.5",
    "!1+1",
    "1+2==3",
    "1<2==1",
    "3&1",
    "5|2",
    "6&3",
    "1<<3",
    "16>>2",
    "~0",
    "y",
    "z",
    "c",
    "x+0",
    "a=3;a*2",
    "a=3;b=4;a*b",
    "a=2;a+=3;a",
    "a=2;a*=3;a",
    "a=7;a%=4;a",
    "a=2;a^=3;a",
    "a=5;a-=1;a",
    "a=8;a/=2;a",
    "isnan(nan)",
    "isinf(inf)",
    "isnan(1)",
    "int(2.7)",
    "int(-2.7)",
    "fact(5)",
    "hypot(3,4)",
    "acos(1)",
    "asin(1)",
    "sinh(0)",
    "cosh(0)",
    "tanh(1)",
    "sqr(3)",
    "cbrt(27)",
    "log(exp(2))",
    "exp(log(5))",
    "max(1,2)*min(3,4)",
    "norm(3,4)",
    "xor(1,1)",
    "xor(5,1)",
    "1 + 2",
    " 3*4 ",
    "u=5;u+1",
]

VECTOR_EXPRESSIONS = [
    "[1,2,3]",
    "[1,2]+[3,4]",
    "[1,2]*2",
    "2*[1,2]",
    "[1,2,3]-1",
    "[4,6]/[2,3]",
    "-[1,2]",
    "[1,2]^2",
    "[1,2,3][0]",
    "[1,2,3][2]",
    "[1,2,3][-1]",
    "V=[1,2,3];V[1]",
    "V=[1,2,3];V[1]=7;V",
    "V=[1,2];V+=1;V",
    "V=[1,2];V*=[3,4];V",
    "norm([3,4])",
    "norm([1,2,2])",
    "sum([1,2,3])",
    "[1,2]==[1,2]",
    "[1,2]!=[1,3]",
    "[1,2]<[2,3]",
    "max([1,5,3])",
    "min([4,2,8])",
    "size([1,2,3])",
    "[[1,2],[3]]",
    "[1,2,3]*[2,2,2]",
    "dot([1,2],[3,4])",
    "round([1.5,2.5])",
    "abs([-1,2])",
    "sqrt([4,9])",
    "cut([-1,5,2],0,3)",
    "lerp([0,0],[10,20],0.5)",
    "[1,2]>1",
    "V=[0,1,2,3];V[1]+V[2]",
    "[1,2,3,4][1]*10",
    "1?[1,2]:[3,4]",
    "0?[1,2]:[3,4]",
    "[x,y]",
    "[nan,inf]",
    "V=[5,6];[V,7]",
    "mean([1,2,3,6])",
    "prod([2,3,4])",
    "sign([-2,0,3])",
    "[1,2,3]%2",
    "[2,3]^[2,1]",
    "floor([1.5,-1.5])",
    "V=[1,2,3];V[0]=V[2];V",
]

IMAGE_EXPRESSIONS = [
    "(1,2;3,4) echo {i(1,0)}",
    "(1,2;3,4) echo {i(0,1)}",
    "(1,2;3,4) echo {i(1,1,0,0)}",
    "(1,2;3,4) echo {i(5,0)}",
    "(1,2;3,4) echo {i(-1,0)}",
    "(1,2;3,4) echo {i}",
    "(1,2;3,4) echo {i(x,y)}",
    "(1,2^3,4) echo {i(1,0,0,1)}",
    "(1,2^3,4) echo {i(0,0,0,2)}",
    "(1,2^3,4) echo {I(1,0)}",
    "(1,2^3,4) echo {I(1,0,0)}",
    "(1,2^3,4) echo {I}",
    "(1,2) (3,4,5) echo {i(#0,1)}",
    "(1,2) (3,4,5) echo {i(#1,2)}",
    "(1,2) (3,4,5) echo {i(#-1,0)}",
    "(1,2) (3,4,5) echo {i(#-2,1)}",
    "(1,2) (3,4,5) echo {i(#0,5)}",
    "(1,2^3,4) (9) echo {I(#0,1,0)}",
    "(1,2^3,4) (9) echo {I(#0,5,0)}",
    "(1,2) (3,4,5) echo {w#0},{w#1},{w}",
    "(1,2;3,4) echo {w},{h},{d},{s}",
    "(1,2;3,4) echo {wh},{whd},{whds}",
    "(1,2^3,4) echo {whds}",
    "(1,2) (3;4;5) echo {h#1},{h#0},{s#1}",
    "(1,5,3) echo {im},{iM},{ia}",
    "(1,5,3) echo {is}",
    "(1,2;3,4) echo {i(#0,1,1)}",
    "(1,2,3,4) echo {i(1.5)}",
    "(1,2,3) echo {i[1]}",
    "(1,2,3) echo {i[5]}",
    "(1,2) echo {x+0},{y},{c}",
    "echo {w}",
    "(7) echo {i(0,0,0,0)+1}",
    "(1,2) (3,4,5) echo {w#-1}",
    "(1,2) name a (3,4,5) echo {w#0+w#1}",
]

PIXEL_EXPRESSIONS = [
    'input 3,1,1,1,"x"',
    'input 3,1,1,1,"-x^2"',
    'input 3,1,1,1,"x%2"',
    'input 4,1,1,1,"x<2?1:0"',
    'input 4,1,1,1,"x>0&&x<3"',
    'input 3,2,1,1,"x+y*w"',
    'input 3,2,1,1,"w*h"',
    'input 2,2,1,2,"c?x:y"',
    'input 2,2,1,2,"[x,y]"',
    'input 2,1,1,2,"[1,2,3]"',
    'input 3,1,1,1,"A=[x,x*2]; A[1]"',
    'input 3,1,1,1,"A=x; B=A*A; B+1"',
    'input 3,1,1,1,"round(x/2)"',
    'input 3,1,1,1,"sin(x)"',
    'input 3,1,1,1,"lerp(-1,1,x/w)"',
    'input 3,1,1,1,"cut(x-1,0,1)"',
    'input 4,1,1,1,"atan2(x,1)"',
    'input 2,2,1,1,"norm(x,y)"',
    'input 4,4,1,1,"(x+y)%3"',
    'input 2,2,1,3,"[x,y,c][c]"',
    'input 2,2,1,1,"x/0"',
    'input 3,1,1,1,"nan"',
    'input 3,1,1,1,"inf"',
    'input 2,2,2,1,"x+y+z"',
    'input 2,2,2,1,"d"',
    '(1,2,3) fill "i(x-1)+i(x+1)"',
    '(1,2,3) fill "i(x,0,0,1)"',
    '(1,2;3,4) fill "i(y,x)"',
    '(1,2;3,4) fill "I(1,0)[0]"',
    '(1,2,3) (10,20) fill[1] "i(#0,x)+i"',
    '(1,2,3) (10,20) +fill[1] "i(#0,x+1)*2"',
    '(1,2,3) fill "x==1?9:i"',
    '(1,2,3) fill "t=i; t*t"',
    '2,2,1,3 fill "P=[x,y]; [P[0],P[1],P[0]+P[1]]"',
    '(1,2;3,4) fill "i(x,y)*w+h"',
    '2,2,1,2 fill "[i0+1,i1+2]"',
    "(1,2) eval \"set('v',i(1))\" echo $v",
    "(1,2) eval \"end(set('v',i(1)+i(0)))\" echo $v",
    "(5) eval \"S=i;end(set('v',S*2))\" echo $v",
    "(1,2,3) eval[0] \"end(set('v',w))\" echo $v",
    "(1,2,3) (4) eval[0] \"end(set('v',i(#1,0)))\" echo $v",
]

FUNCTIONS = [  # G'MIC's other scalar functions, ++ and --, vector(), locals named like sizes
    "echo {avg(1,2,6)}",
    "echo {med(3,1,2)}",
    "echo {std(1,2,3,4)}",
    "echo {var(1,2,3,4)}",
    "echo {argmin(3,1,2)}",
    "echo {argmax(3,1,2)}",
    "echo {bool(5)}",
    "echo {isint(2)}",
    "echo {isint(2.5)}",
    "echo {sinc(0)}",
    "echo {asinh(1)}",
    "echo {acosh(2)}",
    "echo {atanh(0.5)}",
    "echo {gauss(0)}",
    "echo {deg2rad(180)}",
    "echo {rad2deg(pi)}",
    "echo {log1p(1)}",
    "echo {expm1(1)}",
    "echo {exp2(3)}",
    "echo {cot(1)}",
    "echo {sec(1)}",
    "echo {mean(1,2)}",
    "echo {kth(2,5,1,3)}",
    "echo {minabs(-3,2)}",
    "echo {maxabs(-3,2)}",
    "echo {mod(-7,3)}",
    "echo {fmod(-7,3)}",
    "echo {trunc(-2.5)}",
    "echo {isfinite(1)}",
    "echo {isnum(1)}",
    "echo {isbool(1)}",
    "echo {gcd(12,18)}",
    "echo {lcm(4,6)}",
    "echo {repeat(3,k,k)}",
    "echo {s=0;repeat(4,k,s+=k);s}",
    "echo {s=0;for(k=0,k<4,++k,s+=k);s}",
    "echo {k=0;while(k<3,++k);k}",
    "echo {a=1;++a;a}",
    "echo {a=1;a++;a}",
    "echo {a=5;--a}",
    "echo {v=vector(3);v}",
    "echo {v=vector3(1);v}",
    "echo {v=vector(3,7);v}",
    "echo {narg(1,2,3)}",
    "echo {arg(2,5,6,7)}",
    "echo {sqrt(2)^2}",
    "echo {int(-0.5)}",
    "echo {round(-1.5)}",
    "echo {round(2.675,0.01)}",
    "echo {round(7.5,1,1)}",
    "echo {round(7.5,1,-1)}",
    "echo {cut(5,[0,1])}",
    "echo {u(1,1)}",
    "echo {min(3,[4,1])}",
    "echo {max([1,2],[3,0])}",
    "echo {norm1(3,-4)}",
    "echo {norm2(3,4)}",
    "echo {norminf(3,-4)}",
    "echo {abs([-1,-2])+1}",
    "echo {[1,2,3]/0}",
    "echo {sum([1,2],[3,4])}",
    "echo {ceil(-0.5)}",
    "echo {round(-0.4)}",
    "echo {sinc(1)}",
    "echo {gauss(1,2)}",
    "echo {a=1;b=a++;[a,b]}",
    "echo {a=1;b=++a;[a,b]}",
    "echo {a=3;b=a--;[a,b]}",
    "echo {3--2}",
    "echo {a=2;-a}",
    "echo {a=2;--a+1}",
    "echo {std(5)}",
    "echo {med(1,2,3,4)}",
    "echo {argmax(1,5,5)}",
    "echo {kth(1,5,1,3)}",
    "echo {arg(4,5,6,7)}",
    "echo {gcd(0,5)}",
    "echo {round(-7.5,1,1)}",
    "echo {round(7.25,0.5,-1)}",
    '(1,5,3) fill "argmax(i,2)"',
    '(1,5,3) fill "a=x;a++;a"',
]

MORE_PIXEL_EXPRESSIONS = [  # fill/eval/input over pixels and channels, comments inside
    '(1,2^3,4^5,6) fill "I*2"',
    '(1,2^3,4^5,6) fill "[i0,i1,i2][c]"',
    '(1,2^3,4^5,6) fill "c==0?x:y"',
    '(1,2^3,4^5,6) fill "i(x,y,0,2-c)"',
    '(1,2^3,4^5,6) (7,8^9,10^11,12) fill[0] "I(#1,x,y)"',
    '(1,2^3,4^5,6) fill "norm(I)"',
    '(1,2^3,4^5,6) fill "max(I)"',
    '(1,2^3,4^5,6) fill "sum(I)/s"',
    '(1,2^3,4^5,6) fill "V=I;V[0]=0;V"',
    '(1,2^3,4^5,6) fill "[1,2,3,4]"',
    '(1,2^3,4^5,6) fill "i+c"',
    '(1,2;3,4) fill "i(x,y-1)"',
    '(1,2;3,4) fill "i(x-1,y-1)"',
    '(1,2;3,4) fill "i(#0,1,1)"',
    '(1,2;3,4) fill "i(1,1)"',
    '(1,2;3,4) fill "w*h+x"',
    '(1,2;3,4) fill "wh"',
    '(1,2;3,4) fill "ia"',
    '(1,2;3,4) fill "iM-i"',
    '(1,2;3,4) fill "im"',
    '(1,2;3,4) fill "x>0?i(x-1,y):-1"',
    '(1,2;3,4) fill "A=x;B=y;A*10+B"',
    '(1,2;3,4) fill "A=[x,y];norm(A)"',
    '(1,2;3,4) fill "round(i/3,0.5)"',
    '(1,2,3,4,5) fill "x%2==0&&x>0"',
    '(1,2,3,4,5) fill "!(x%2)"',
    '(1,2,3,4,5) fill "x?1/x:0"',
    '(1,2,3,4,5) fill "atan2(x,2)"',
    '(1,2,3,4,5) fill "lerp(i,10,0.5)"',
    '(1,2,3,4,5) fill "cut(i,2,4)"',
    '(1,2,3,4,5) fill "sign(i-3)"',
    '(1,2,3,4,5) fill "sqrt(i)*exp(-i)"',
    '(1,2,3,4,5) fill "log(i)/log(2)"',
    '(1,2,3,4,5) fill "i^2^0.5"',
    '(1,2,3,4,5) fill "-i^2"',
    '(1,2,3,4,5) fill "i%2"',
    '(1,2,3,4,5) fill "tan(i)"',
    '(1,2,3,4,5) fill "cos(i)+sin(i)"',
    '(1,2,3,4,5) fill "floor(i/2)*2"',
    '(1,2,3,4,5) fill "ceil(i/2)"',
    '(1,2,3,4,5) fill "abs(i-3)"',
    '(1,2,3,4,5) fill "min(i,3)"',
    '(1,2,3,4,5) fill "max(i,3,x)"',
    '(1,2,3,4,5) fill "i==3"',
    '(1,2,3,4,5) fill "i!=3||x==0"',
    '(1,2,3,4,5) fill "# comment\\ni*2"',
    '(1,2,3,4,5) fill "A = i; # note\\nA+1"',
    '2,2,2,2 fill "x+2*y+4*z+8*c"',
    '2,2,2,2 fill "whds"',
    '2,2,2,2 fill "[x,y]"',
    '2,2,2,1 fill "i(x,y,1-z)"',
    '(1,2,3,4) +fill "i(3-x)"',
    "(1,2,3,4) eval. \"end(set('m',iM))\" echo $m",
    "(1,2,3,4) eval. \"end(set('m',ia))\" echo $m",
    "(1,2;3,4) eval. \"end(set('v',[w,h]))\" echo $v",
    "(1,2;3,4) eval. \"end(set('v',I(1,1)))\" echo $v",
    "(1,2;3,4) eval. \"end(set('v',i(1,1)+i(0,1)))\" echo $v",
    '(1,2) input 2,2,1,1,"i(#0,x)*10+y"',
    '(1,2) input 2,2,1,1,"i(#-1,x)+y"',
    '(1,2) 1,1,1,2,"[w#0,i(#0,1)]"',
    '(1,2^3,4) 2,1,1,2,"I(#0,x)"',
    '(1,2^3,4) 2,1,1,2,"I(#0,1-x)+1"',
    '(1,2^3,4) 2,1,1,1,"I(#0,x)[1]"',
    '1,1,1,1,"[1,2,3]"',
    '4,1,1,1,"x*(x<2)"',
    '3,3,1,1,"x==y"',
]

LOOPS = [  # while(), do(), for(), repeat() over every pixel at once
    "echo {k=0;while(k<3,++k)}",
    "echo {for(k=0,k<3,++k,k*2)}",
    "echo {s=0;do(s+=2,s<5)}",
    "echo {s=0;do(s+=2,s<5);s}",
    "echo {repeat(3,k,k*2)}",
    "echo {repeat(3,5)}",
    "echo {s=0;repeat(3,s+=2);s}",
    "echo {s=0;repeat(3,k,s+=k);k}",
    '(1,2,3) fill "s=0;for(k=0,k<i,++k,s+=k);s"',
    '(1,2,3) fill "s=0;repeat(i,k,s+=2);s"',
    '(1,2,3) fill "k=0;while(k*k<i*3,++k);k"',
    "echo {k=5;while(k<3,++k);k}",
    "echo {k=5;do(++k,k<3);k}",
    "echo {V=[0,0];repeat(3,k,V[0]+=k;V[1]+=1);V}",
    '(1,2,3,4) fill "V=[0,0];for(k=0,k<x,++k,V+=[k,1]);V[0]*10+V[1]"',
    "echo {f=1;for(k=1,k<=5,++k,f*=k);f}",
    "echo {n=27;c=0;while(n!=1,n=n%2?3*n+1:n/2;++c);c}",
]

SLICES = [  # V[start,length]
    "echo {[1,2,3,4][1,2]}",
    "echo {V=[1,2,3];V[0,2]}",
    "echo {V=[1,2,3];V[1,2]*2}",
    "echo {V=[1,2,3];V[2,2]}",
    "echo {V=[1,2,3,4,5];W=V[1,3];W[1]}",
    '2,1,1,2 fill "V=[x,y,9,8];V[2,2]"',
]

PREFIXES_AND_SEPARATORS = [  # '*' '<' '>' before an expression, blanks, comments, empty ';'
    '(1,2) fill "*x+1"',
    "(1,2) eval. \"*end(set('v',i(1)))\" echo $v",
    '(1,2) fill ">x+i(x-1)"',
    '(1,2,3) fill "<x+i(x+1)"',
    '2,1,1,1,"*x*3"',
    '(1,2) fill " x + 1 "',
    '(1,2) fill "x #comment"',
    '(1,2) fill "x;"',
    '(1,2) fill ";x"',
    '(1,2) fill "x;;1"',
]

# nn_lib's tutorial (nn_test_color): its batch and its reconstruction read, on fixed data
# (u() replaced by fixed values), as G'MIC reads them.
TUTORIAL = [
    '(0,1;2,3^4,5;6,7^8,9;10,11) 1,32,1,5,"P = round([0.3,0.7]*([w#0,h#0] - 1));'
    ' [ lerp(-1,1,P[0]/w#0),lerp(-1,1,P[1]/h#0),I(#0,P)/255 ]"',
    '(0,1;2,3^4,5;6,7^8,9;10,11) 1,32,1,5,"P = round([y/32,1-y/32]*([w#0,h#0] - 1));'
    ' [ lerp(-1,1,P[0]/w#0),lerp(-1,1,P[1]/h#0),I(#0,P)/255 ]"',
    '4,3,1,3 +f[0] "IN = [ lerp(-1,1,x/w),lerp(-1,1,y/h) ]; OUT = [IN[0],IN[1],IN[0]*IN[1]];'
    ' cut(OUT*255,0,255)"',
    '(0,1;2,3^4,5;6,7^8,9;10,11) input 1,4,1,5,"P=round([0.3,0.7]*[w#0-1,h#0-1]);'
    ' [lerp(-1,1,P[0]/w#0),lerp(-1,1,P[1]/h#0),I(#0,P)/255]"',
    '(0,1;2,3^4,5;6,7^8,9;10,11) input 1,3,1,5,"P=round([y/2,1-y/2]*[w#0-1,h#0-1]);'
    ' [lerp(-1,1,P[0]/w#0),lerp(-1,1,P[1]/h#0),I(#0,P)/255]"',
    '(0,100;200,255^4,5;6,7^8,9;10,11) 2,2,1,3 fill "cut(I(#0,x,y)*1.5,0,255)"',
    '4,2,1,3 fill "X=[lerp(-1,1,x/w),lerp(-1,1,y/h)]; cut((X[0]+X[1]+[0,1,2])*255,0,255)"',
]

MORE_COMMANDS = [  # eval, inline and blank images, cut %, resize [k], append's centering…
    '(1,2) eval "i+1" echo ${}',
    '(1,2) eval "i(1)*3"',
    '(1,2) eval "i=5"',
    '(1,2) fill "i=5"',
    '(1,2) eval "i(0)=7"',
    "-echo hi",
    "echo -5",
    'echo "a b" "c"',
    "(1,2;3)",
    "(1,2,3;4)",
    "2,2,1,1,1,2,3,4",
    "input 2,1,1,1,7,8",
    "(1,5,10) cut 10%,90%",
    "(1,2,3) (1,2) resize[1] [0]",
    "(1,2,3) (1,2) resize[1] [0],[0]",
    "(1,2) (3,4,5) append x,0.5",
    "(1;2) (3;4;5) append x,0.5",
    "(1;2) (3;4;5) append x,1",
    "(1,2) print",
    "(1,2) n 0,1 echo {ia}",
    "error oops",
    "(1,2) echo {I(0,0,0,0)}",
    "(1,2^3,4) echo {I(#0,1)}",
    "(1,2;3,4) echo {j(1,0)}",
    '(1,2,3) fill "j(1)"',
    '(1,2,3) fill "j(-1)"',
    '(1,2,3) fill "J(1)"',
    "(1,2;3,4) echo {wh#0},{im#0},{iM#0},{ia#0}",
    "(1,2) (3) echo {i(#1)}",
    "(1,2,3) echo {i0},{i1}",
    "(1,2^3,4) echo {i0},{i1},{i2}",
    '(1,2^3,4) fill "i1"',
    '(1,2^3,4) fill "i2"',
    "(1,2,3) eval \"set('v',x)\" echo $v",
    "(1,2,3) eval. \"set('v',x)\" echo $v",
    "(1,2,3) eval[0] \"set('v',x)\" echo $v",
    '(1,2,3) eval[0] "i+1" echo ${}',
    '(1,2,3) eval "i+1" echo ${}',
    '(1,2,3) eval. "i+1" echo ${}',
    'eval "1+1" echo ${}',
    "(1,2,3) eval \"S=0;S+=i;end(set('v',S))\" echo $v",
    "(1,2,3) eval. \"S=0;S+=i;end(set('v',S))\" echo $v",
    "(1,2,3) eval. \"end(set('v',w))\" echo $v",
    '(1,2,3) fill "-2^2"',
    '(1,2,3) fill "-2^2^2"',
    '(1,2,3) eval "x" echo ${}',
    '(1,2,3) (5) eval "i" echo ${}',
]

PLUS_AND_COPY_NAMES = [  # '+' on commands of one or several images, copy names
    "(1,2) (3,4) +append x",
    "(1,2) (3,4) +append[1,0] y",
    "(1,2,3) +resize 2",
    "(1,2,3) +crop 0,1",
    "(1,2,3) +normalize 0,1",
    "(1,2,3) +cut 1,2",
    "(1,2) name a +resize[a] 4 +resize[a] 3",
    "(1,2) +name b",
    "(1) (2) +keep[0]",
    "(1) (2) +rm[0]",
    "(1,2) -add 1",
    "(1,2) +add[0] [0]",
    "(1,2) (3,4) +mul[0] [1]",
    "(1,2) (3,4) +append[0,1] c",
    '(1,2) name "a" +add 1 +add 1 +add[1] 1',
    "(1) name x_c3 +add 1",
    "(1) name x_c0 +add 1",
    "(1) name x_c +add 1",
    "(1) name _c1 +add 1",
    "(1) name x_c01 +add 1",
    "(1) [0]x0",
    "(1) [0]x3",
    "(1) name a [a]x2 [a_c1]",
]

NAN_AND_INFINITY = [  # image commands and fills meeting nan and inf
    "(1,nan,3) cut 0,2",
    "(1,inf,-inf) cut 0,2",
    "(1,inf,3) normalize 0,1",
    "(-inf,0,1) normalize 0,1",
    "(1,nan,3) resize 6,1,1,1,3",
    "(1,nan,3) resize 6,1,1,1,1",
    "(1,nan,3,4) resize 2,1,1,1,2",
    "(1,2) add nan",
    "(1,2) mul inf",
    "(0,2) mul inf",
    "(1,nan) div 0",
    "(1,2) sub -inf",
    '(nan) fill "i==i"',
    '(nan) fill "isnan(i)"',
    '(inf) fill "i>1e308"',
    '(1,2,3) fill "i/0"',
    '(1,2,3) fill "0/0"',
    '(1,2,3) fill "-0/0"',
    '(1,2,3) fill "sqrt(-i)"',
    "(1,2,3) crop 0,5,1",
    "(1e30,2) resize 4,1,1,1,3",
]

STRINGS_AND_CONDITIONS = [  # '…' in expressions and {'…'}, conditions written in pieces
    "x=abc if \"'$x'=='abc'\" echo same else echo differ fi",
    "x=abc if '$x'=='abc' echo same else echo differ fi",
    "x=abd if '$x'=='abc' echo same else echo differ fi",
    "x=abc if {'$x'=='abc'} echo same fi",
    "echo {'abc'=='abc'}",
    "echo {'ab'=='abc'}",
    "echo {'a'}",
    "echo {'ab'}",
    "echo {['ab']}",
    'if 1<2" && "2<3 echo ok fi',
    'if 1<2" || "2>3 echo ok fi',
    'a=1 if $a" "==" "1 echo ok fi',
    "if !0 echo ok fi",
    "if !(1>2) echo ok fi",
    "while0=1 echo $while0",
]

NUMBERS_AND_ASSIGNMENTS = [  # := and op= on numbers, number forms
    "x:=-2^2 echo $x",
    "x:=-2^2+0 echo $x",
    "x=-2^2 echo $x",
    "if -2^2>0 echo pos fi",
    "repeat 2^2 echo x done",
    "x:=2^3^2 echo $x",
    "x:=1e-7 echo $x",
    "x:=1/3 y:=$x*3 echo $y",
    "x:=0.1 x+=0.2 echo $x",
    "x:=1e300 x*=1e10 echo $x",
    "x:=5 x/=0 echo $x",
    "x:=-5 x%=0 echo $x",
    "x=3 x-=-2 echo $x",
    "x=2 x^=-1 echo $x",
    "x=7 x.=.5 echo $x",
    "x=7 x+=.5 echo $x",
    "x=007 x+=1 echo $x",
    "x=0x10 echo $x",
    "echo {0x10}",
    "echo {0b101}",
    "echo {1_000}",
    "echo {.5}",
    "echo {5.}",
    "echo {1e+2}",
    "echo {1E2}",
    "echo {+.5e-1}",
]

ODD_ITEMS = [  # keywords, brackets and dollars as arguments, blocks in braces
    "(1) (2) keep 1",
    "u echo hi",
    'u "" echo [${}]',
    "echo fi",
    "echo else",
    "echo {",
    "echo }",
    "echo [",
    "echo ]",
    "echo (",
    'echo "("',
    "echo a=",
    "x= echo [$x]",
    "x=a=b echo $x",
    "x==1 echo $x",
    "echo $x$",
    "echo ${",
    "echo ${x",
    "(1) echo $!$!",
    "repeat 2 repeat 2 done echo $> done",
    "if 1 repeat 2 echo $> done fi",
    "do echo a while 0 echo b",
    "repeat 2 { echo a } echo b",
    "repeat 2 {echo a} echo b",
    "if 1 { echo a } fi",
    "{ echo a }",
    "echo a } ",
    "echo {1+2",
    "echo a}b",
    "echo $$",
    "echo ${}x",
]

COMMAND_ARGUMENTS = [  # normalize's %, constancy; crop's boundary; psnr's max; resize's edges
    "(1,2,3) normalize 0,1,0.5",
    "(3,3,3) normalize 0,1,0.5",
    "(1,2,3) normalize 10%,90%",
    "(1,2,3) crop -1,4,1",
    "(1,2,3) crop -1,4,0",
    "(1,2,3) crop -2,5,2",
    "(1,2,3) crop -2,5,3",
    "(1,2;3,4) crop -1,-1,2,2,1",
    "(1,2,3,4) crop -0.5,0,1",
    "(1,2,3,4) crop 0.5,1.5",
    "(1,2,3,4,5;6,7,8,9,10) crop 25%,0,75%,100%",
    "(1,2,3,4,5) crop 1,x",
    "(1) (2) (3) psnr[0,1] [2] echo ${}",
    "(1,2) (1,3) psnr[0] [1],10 echo ${}",
    "(1,2,3) (4,5,6) psnr[1] [0],0.5 echo ${}",
    "(1,2,3) rm[0] rm",
    "rm",
    "keep",
    "(1) keep[]",
    "(1,2) (3,4) append c,0.5",
    "(1,2;3,4) (5;6) append y,0.5",
    '(1,2,3) name ""',
    "(1) name a name b",
    "(1) (2) name[1] x name[0] y",
    "(1,2,3) resize 3,2,1,1,0",
    "(1,2,3) resize 6,1,1,1,0,2",
    "(1,2,3) resize 6,1,1,1,0,3",
    "(1,2,3) resize 6,1,1,1,0,1,1",
    "(1,2,3) resize 2,1,1,1,0",
    "(1,2,3) resize 2,1,1,1,0,0,1",
    "(1,2,3) resize 2,1,1,1,0,0,0.5",
    "(1,2,3,4,5) resize 3,1,1,1,2",
    "(1,2,3,4,5) resize 4,1,1,1,3",
    "(1,2,3,4,5) resize 2,1,1,1,5",
    "(1,2;3,4;5,6) resize 1,1,1,1,2",
    "(1,2;3,4;5,6) resize 4,2,1,1,3",
    "(1,2^3,4^5,6^7,8) resize 2,1,1,2,2",
    "(1,2^3,4^5,6^7,8) resize 2,1,1,3,3",
    "(1,2) resize 2,1,3,1,3",
    "(1,2/3,4) resize 2,1,1,1,3",
    "(1,2/3,4) resize 2,1,3,1,3",
    "(1,2,3) resize 100%,100%,100%,200%",
    "(1,2,3) resize 33%",
    "(1,2,3) resize 34%",
    "(1,2,3,4,5,6,7) resize 10%",
    "(1,2,3) resize 150%,1,1,1,3",
    "(1,2,3) resize 0.5,1",
    "(1,2,3) resize 3,1,1,1,7",
    "(1,2,3) resize 3,1,1,1,-1",
    "(1,2,3,4) resize 2,2,1,1,-1",
]

IMAGE_SELECTIONS = [  # percent and odd ranges, {k,expression}
    "(1,2,3) (4) echo {0,w}",
    "(1,2,3) (4) echo {1,w}",
    "(1,2,3) (4) echo {-2,i(1)}",
    "echo {1,2}",
    "echo {{1+1}*2}",
    "(1) (2) (3) add[-1--2] 10",
    "(1) (2) (3) (4) add[50%] 10",
    "(1) (2) (3) (4) add[0-50%] 10",
    "(1) (2) (3) (4) add[25%-75%] 10",
    "(1) (2) (3) add[1-0] 10",
    "(1) (2) (3) add[0-1,0-2] 10",
    "(1) (2) (3) add[1,] 10",
    "(1) (2) (3) add[] 10",
    "(1) (2) (3) add[^] 10",
    "(1) (2) (3) add[^-1] 10",
    "(1) name a (2) name b add[^a] 10",
    "(1) name a (2) name b add[a,^b] 10",
    "(1) (2) (3) add[0-2:2] 10",
    "(1) (2) (3) (4) (5) add[1-4:3] 10",
    "(1) (2) (3) (4) (5) add[-1-0:2] 10",
    "x=1 (1) (2) add[$x] 10",
    "(1) (2) add[{$!-1}] 10",
]

ESCAPES_AND_ARGUMENTS = [  # backslashes, op=, repeat counts, resize/append/fill forms
    "x=foo echo $x.png",
    "x=foo echo ${x}_1",
    "(1) name img{1+1}",
    "echo \\$x",
    "x=0.1 x+=0.2 echo $x",
    "x=3 x-=5 echo $x",
    "x=1e3 x+=1 echo $x",
    "x=abc x+=1 echo $x",
    "x=2 x^=0.5 echo $x",
    "x=10 x/=4 echo $x",
    "x=10 x%=4 echo $x",
    "x=-7 x%=3 echo $x",
    "if abc echo y fi",
    "break",
    "repeat -1 echo x done",
    "repeat 2.5 echo x done",
    "repeat 2 continue echo x done",
    "if 1 echo a elif echo b fi",
    "(1) (2) add[] 5",
    '(1) name "a,b"',
    '(1) name "a b" echo ok',
    "(1,2,3) resize 2,1,1,1,linear",
    "(1,2,3,4) resize -50",
    "(1,2,3,4) resize 50%,100%,100%,100%,3",
    "(1,2;3,4) resize 150%,150%,1,1,3",
    "(1,2,3) resize 3,1,1,3",
    "(1,2^3,4) resize 2,1,1,3",
    "(1,2^3,4^5,6) resize 2,1,1,2,3",
    "(1,2^3,4^5,6) resize 2,1,1,1,2",
    "(1,2^3,4^5,6) resize 2,1,1,4,3",
    "(1,2;3,4) resize 3,2,1,1,5",
    "(1,2;3,4) resize 2,3,1,1,6",
    "(1,2,3,4,5,6,7) resize 3,1,1,1,6",
    "(1,2,3,4,5,6,7) resize 3,1,1,1,3",
    "(1,2,3,4,5,6,7) resize 3,1,1,1,2",
    "(1,2,3,4,5,6,7) resize 4,1,1,1,2",
    "(1,2,3,4,5,6,7) resize 4,1,1,1,4",
    "(1,2,3,4,5,6,7) resize 4,1,1,1,0",
    "(1,2,3,4,5,6,7) resize 4,1,1,1,0,0,1",
    "(1,2,3,4,5,6,7) resize 4,1,1,1,0,0,0.5",
    "(1,2,3) resize 7,1,1,1,0,1,0.5",
    "(1,2,3) resize 7,1,1,1,0,2,0.5",
    "(1,2,3) resize 7,1,1,1,0,3,0.5",
    "(1,2,3) resize 8,1,1,1,0,3,0.5",
    "(1,2,3) resize 8,1,1,1,0,2",
    "(1,2,3) resize 8,1,1,1,1,0,0.5",
    "(1,2,3) resize 8,1,1,1,5,2",
    "(1,2,3) resize 8,1,1,1,6,3",
    "(1,2,3) resize 8,1,1,1,3,2",
    "(1,2,3) resize 8,1,1,1,3,3",
    "(1,2,3) r 7,1,1,1,4,0,0.5",
    "(1,2,3) r 7,1,1,1,4,0,1",
    "(1,2,3) r 8,1,1,1,4,0,0.5",
    "(1,2,3) normalize 0,0",
    "(1,nan,3) normalize 0,1",
    "(1,2,3) normalize 5,5",
    "(1,2,3) (4) normalize[0,1] 0,1",
    "(1,2) (3) (4) append c",
    "(1,2) (3) (4) append z",
    "(1;2) (3,4) append x",
    "(1;2) (3,4) append y",
    "(1,2;3,4) (5,6) append y,1",
    "(1,2) (3,4;5,6) append x,0.5",
    "(1,2) add 1e10",
    "(1,2) mul nan",
    "(1,2) add {1/3}",
    "2,2 fill 1,2,3",
    '2,2,1,2 fill "[x,y,9]"',
    '2,2,1,3 fill "[x,y]"',
    '2,2 fill "[x,y]"',
    '2,2,1,2 fill "x"',
    '1,1,1,3 fill "c*2"',
    "(1,2,3) cut 2,2",
    "(1,2,3) cut 0,0",
    "(1,2,3) +cut 1.5,2.5",
    "echo \\{1+1\\}",
    "echo a\\,b",
    "x=3 echo \\$x=$x",
    "(1) name a\\,b",
    'echo "a\\"b"',
    'echo \\"',
    "echo a\\b",
    "echo \\\\",
    "echo a\\nb",
    'echo "a\\tb"',
    "x=a\\nb echo $x",
    "(1) name a\\nb",
]

MORE_EXPRESSIONS = [  # precedence, NaN and infinities, vectors, assignments
    "echo {1+}",
    "echo {(1}",
    "echo {[1,2,3]<[2,2,2]}",
    "echo {[1,2]&&[0,1]}",
    "echo {V=[1,2];V[0]+=5;V}",
    "echo {V=[1,2,3];V[1]:=9;V}",
    "echo {a:=3;a}",
    "echo {1;2;3}",
    "echo {(1,2,3)}",
    "echo {max([1,2],[5,0])}",
    "echo {min([1,2],3)}",
    "echo {abs(-0)}",
    "echo {2^53}",
    "echo {2^53+1}",
    "echo {1e-20}",
    "echo {123.456}",
    "echo {-1e-5}",
    "echo {1/7}",
    "echo {1e100}",
    "echo {-0.0}",
    "echo {0.1*3}",
    "echo {round(1.005,0.01)}",
    "echo {floor(-0.5)}",
    "echo {isnan(0/0)}",
    "echo {1/inf}",
    "echo {inf*0}",
    "echo {nan?1:2}",
    "echo {!nan}",
    "echo {nan&&1}",
    "echo {nan||0}",
    "echo {[]}",
    "echo {[1]}",
    "echo {[1,2][1]+[3,4][0]}",
    "echo {sum(1,2,3)}",
    "echo {mean(1,2,3)}",
    "echo {cut(nan,0,1)}",
    "echo {sign(nan)}",
    "echo {sign(-0)}",
    "echo {lerp(0,10,nan)}",
    "echo {atan2(0,0)}",
    "echo {exp(1000)}",
    "echo {log(inf)}",
    "echo {sqrt(inf)}",
    "echo {-inf%2}",
    "echo {5%inf}",
    "echo {7%2.5}",
    "echo {-7.5%2}",
    "echo {2^1024}",
    "echo {(-8)^(1/3)}",
    "echo {0^0}",
    "echo {0^-1}",
    "echo {1e308*10}",
    "echo {3>=3>=1}",
    "echo {1==1==1}",
    "echo {2*3%4}",
    "echo {8/2/2}",
    "echo {2-3-4}",
    "echo {-3^2}",
    "echo {2^-2^2}",
    "echo {-(3)^2}",
    "echo {2*-3^2}",
    "echo {!0+1}",
    "echo {1<2&&3<4||0}",
    "echo {0||1&&0}",
    "echo {1?0?5:6:7}",
    "echo {5<<1>>1}",
    "echo {7&3|8}",
    "echo {1&&2}",
    "echo {3||0}",
    "echo {1==1?2:3}",
    "echo {x=2;x^x}",
    "echo {A=[1,2,3];A*A}",
    "echo {A=[1,2,3];B=A;B[0]=9;A}",
    "echo {[1,2,3]+[4,5,6]}",
    "echo {[1,2]+[1,2,3]}",
    "echo {norm([0,0])}",
    "echo {norm(-3)}",
    "echo {lerp([1,2],[3,4],[0,1])}",
    "echo {round([0.5,-0.5,1.49])}",
    "echo {[1,2,3]==[1,2,3]}",
    "echo {[1,2,3]!=[1,2,3]}",
    "echo {[0,0]||0}",
    "echo {![1,0]}",
    "echo {-[1,-2]}",
    "echo {-2^2^2}",
    "echo {-2^2*3}",
    "echo {-2*3}",
]

END_AND_SET = [  # end() runs at the last pixel (x,y,z,c and i there); set() gives nan
    "3,2,1,2 eval \"end(set('s',x+10*y+100*c))\" echo $s",
    "3,2,1,2 eval. \"end(set('s',x+10*y+100*c))\" echo $s",
    "3,2,1,2 eval. \"x;end(set('s',x+10*y+100*c))\" echo $s",
    "3,2,1,2 eval. \"[x,y];end(set('s',x+10*y+100*c))\" echo $s",
    "3,2,1,2 fill \"[x,y];end(set('s',x+10*y+100*c))\" echo $s",
    "3,2,1,2 (1,2,3) eval[0] \"end(set('s',x+10*y+100*c))\" echo $s",
    '3,2,1,2,"x+10*y+100*c" eval. "end(set(\'s\',i))" echo $s',
    '3,2,1,2,"x+10*y+100*c" eval "end(set(\'s\',i+i(0,0)))" echo $s',
    '3,2,1,2,"x+10*y+100*c" eval. "end(set(\'s\',i0))" echo $s',
    '3,1,1,1,"x" eval "end(set(\'s\',i+1))" echo $s',
    "(1,2,3) s={end(set('q',x))} echo $q",
    "(1,2,3;4,5,6) echo {x=5;end(set('q',y))} echo $q",
    "echo {set('q',3)+1} echo $q",
    "x:=set('q',1/3) echo $q$x",
    "if {set('q',2.5)} echo $q fi",
    "(0) fill \"set('q',3)\" echo $q",
]

INPUT_POSITIONS = [  # input with a selection inserts at those positions
    "(1) (2) i[0] (5)",
    "(1) (2) i[1] 3,3",
    "i[0] 2,2",
    "(1) (2) i[2] (7)",
    "(1) (2) i[-1] (5)",
    "(1) (2) (3) i[1] [2]",
    "(1) (2) i[0] (5),(6)",
    "(1) (2) i[0,2] (5)",
]

BRANCH_SIDE_EFFECTS = [  # assignments and set() in a branch some pixels take touch those only
    '(1,2,3) fill "a=0; x==0?(a=5):0; a"',
    '(1,2,3) fill "a=0; if(x>0,a+=i,a-=1); a"',
    '(1,2,3) fill "V=[0,0]; x==1?(V[1]=7):0; V[1]"',
    '(1,2,3) fill "a=i; x==1 && (a=9); a"',
    '(1,2,3) fill "a=i; x==1 || (a=9); a"',
    '(1,2,3;4,5,6) fill "a=0; y==1?(x==2?(a=i):(a=-1)):0; a"',
    '(1,2,3,4) fill "s=0; k=0; while(k<x, k%2?(s+=k):0; ++k); s"',
    "(1,2,3) eval. \"x==0?set('a',i):0\" echo $a",
    "(1,2,3) eval. \"if(x==1,set('a',i*10))\" echo $a",
    "(1,2,3) eval. \"x<2?set('a',i):0\" echo $a",
    "(1,2,3) fill \"x==0?set('a',i):0;i\" echo $a",
    "(5,2,7,1) eval. \"set('m',-1); i<3?set('m',x):0\" echo $m",
]

ITEM_PER_PIXEL = [  # V[k] = … with k differing from pixel to pixel; nan indices; fact()
    "echo {A=[1,2];A[nan]}",
    "echo {A=[1,2];A[nan]=5;A}",
    "echo {fact(170)},{fact(171)},{fact(5)}",
    '(1,2,3) fill "A=[0,0,0];A[x]=i;A[0]+A[1]*10+A[2]*100"',
    '(1,2,3) fill "A=[1,1,1];A[x]+=i;A[0]+A[1]*10+A[2]*100"',
    '(1,2,3) fill "A=[1,1,1];A[x]*=i+1;A[0]+A[1]*10+A[2]*100"',
    '(1,2,3) fill "A=[1,1];A[x]=9;A[0]+A[1]*10"',
    '(1,2,3;4,5,6) fill "A=[0,0];A[y]=x+1;A[0]*10+A[1]"',
    '(1,2,3) fill "A=[0,0,0];A[2-x]=(A[x]+=5);A[0]+A[1]*10+A[2]*100"',
]

OTHER_IMAGES_AND_RANDOM = [  # i#k, I#k; iv id ic ip in; u and g as variables
    '(1,2,3) (4,5,6) +fill. "i#0+i"',
    '(1,2,3) (4,5,6) fill. "i#-2*10+i"',
    '(1,2,3^7,8,9) (4,5,6) fill. "I#0"',
    '(1,2,3^7,8,9) (4,5,6^1,1,1) fill. "I#0+I"',
    "(1,2,3^7,8,9) echo {I#0}",
    "(1,2,3,4) echo {iv},{id},{ic},{ip},{in}",
    "(5) echo {iv},{id},{ic}",
    "(1,2;3,4) (5) echo {iv#0},{ic#0}",
    '(0) fill "u<1&&u>=0"',
    '(0) fill "g==g"',
    '(0) fill "u=3;u"',
    '(0) fill "g=3;g+1"',
]

IMAGE_INDICES_AND_SIZES = [  # #k wraps around the list (nan is an error); vector(#n): n values
    "(1,2,3) 4,5 6,7 echo {w#inf},{w#-inf},{w#1e30},{w#-1e30},{w#2147483648}",
    "(1,2,3) 4,5 6,7 echo {w#-2147483649},{w#4294967296},{w#2.7},{w#-0.5},{w#-1.5}",
    "(1,2,3) 4,5 6,7 echo {i(#inf,0)},{I(#-7)},{i#4},{iv#5},{im#inf},{s#-4}",
    "echo {w#0},{h#3},{i(#0,0)},{i#2},{iM#1}",
    "echo {I(#1)}",
    "echo {I}",
    "echo {i}",
    "(1,2) echo {w#(0/0)}",
    "(1,2) echo {i#nan}",
    "(1,2) echo {iv#nan}",
    "(1,2) echo {w#nan}",
    "(1,2) echo {(w#+inf)}",
    "(1,2) echo {I(#nan)}",
    "(1,2) echo {I#nan}",
    "(1,2) echo {I(#1e400)}",
    "(1,2) echo {i(#-1e400,0)}",
    "(1,2^3,4) (5,6,7) echo {I(#5)},{I(#-3)},{I(#inf)}",
    '1,1,1,1 eval "vector(#4)" echo ${}',
    "echo {vector(#3)}",
    "echo {vector(#3,7)}",
    "echo {vector(#2.5)}",
    "echo {vector(#1e10)}",
    "echo {vector(#inf)}",
    "echo {vector(#nan)}",
    "echo {vector(#0)}",
    "echo {vector(#-1)}",
    "echo {vector(#5,1,2)}",
    "echo {vector(#2,1,2,3)}",
    "echo {vector5(1,2)}",
    "echo {vector2(1,2,3)}",
    "echo {vector(#1)}",
    "echo {vector(#3,[1,2])}",
    "echo {vector3([1,2])}",
    "echo {vector(#(1+2))}",
    "echo {n=3;vector(#n)}",
    "echo {vector3(#2)}",
    "(1,2,3) 4,5 echo {w#1e30}",
    "(1,2,3) 4,5 echo {w#-5},{w#2},{w#-1},{w#3}",
    "(1,2) (3,4,5) echo {w#5},{w#-4}",
    '(1,2) fill "vector(#2,x)"',
    '(1,2) fill "vector2(x,5)"',
    "(1,2^3,4) (5,6,7^8,9,10^1,1,1) echo {n=0;I(#n)}",
    '(1,2^3,4^5,6) (5,6,7^8,9,10) fill[0] "n=1;I(#n)"',
    '(1,2^3,4) (5,6,7^8,9,10^1,1,1) fill[1] "n=0;J(#n,0,0)"',
    "(1,2^3,4) (5,6,7^8,9,10^1,1,1) echo {I(#-(1))},{I(#(0+1))}",
]
SHORT_VALUES = [  # {_expression}: the value printed short (C's %g)
    "echo {_round(98.329999,0.01)}",
    "echo {_1/3}",
    "echo {_2/3*1000000}",
    "echo {_[1/3,2,1e10]}",
    "echo {_vector3(0.5)}",
    "echo {_nan},{_-nan},{_0/0},{_inf},{_-inf},{_-0}",
    "echo {_1e-7},{_0.0001},{_0.00001},{_1e-300},{_-1e-320}",
    "echo {_100000},{_1000000},{_1234567},{_123456789},{_2^53}",
    "echo {_0.1+0.2},{_pi}",
    "echo {_}",
    "echo {__1}",
    "echo {_'ab'}",
    "echo {_1,2}",
    "(1,2) echo {_0,w}",
    "echo {_x=2;x*3}",
    "x={_1/7} echo $x",
    'echo {_"1/3"}',
    "(1,2;3,4) echo {_i(1,1)/3}",
    "echo {_{1/3}}",
    "echo A{_1/3}B{1/4}",
]
LANGUAGE = (
    ITEMS_AND_QUOTES
    + SELECTIONS
    + NAMES_AND_COPIES
    + VARIABLES
    + DEFINITIONS
    + MORE_DEFINITIONS
    + MULTI_LINE
    + FILE_LAYOUT
    + STATUS
    + CONTROL
    + INPUT
    + FILL
    + RESIZE
    + IMAGE_COMMANDS
    + PATCHES
    + COLORS
    + AXIS_RANGES
    + DRAW
    + NOISE
    + MORE_COMMANDS
    + ESCAPES_AND_ARGUMENTS
    + IMAGE_SELECTIONS
    + COMMAND_ARGUMENTS
    + ODD_ITEMS
    + NUMBERS_AND_ASSIGNMENTS
    + PLUS_AND_COPY_NAMES
    + NAN_AND_INFINITY
    + STRINGS_AND_CONDITIONS
    + INPUT_POSITIONS
)
EXPRESSIONS = (
    [f"echo {{{text}}}" for text in SCALAR_EXPRESSIONS + VECTOR_EXPRESSIONS]
    + MORE_EXPRESSIONS
    + FUNCTIONS
    + IMAGE_EXPRESSIONS
    + PIXEL_EXPRESSIONS
    + MORE_PIXEL_EXPRESSIONS
    + PREFIXES_AND_SEPARATORS
    + SLICES
    + LOOPS
    + TUTORIAL
    + END_AND_SET
    + OTHER_IMAGES_AND_RANDOM
    + BRANCH_SIDE_EFFECTS
    + ITEM_PER_PIXEL
    + SHORT_VALUES
    + IMAGE_INDICES_AND_SIZES
)


class Nnlib36(str):
    """A case in G'MIC 3.6's nn_lib API: nnpipe runs it with --nnlib 3.6 (the rest of the
    language is the same in both)."""


# G'MIC 3.6's nn_lib: building networks, nn_print, nn_size, nn_check_layer, the arguments
# refused (numbers: tests/test_nnlib36.py). Weights are drawn differently: the cases use the
# zero and identity initialisations, or remove the images.
NNLIB36 = [
    Nnlib36(case)
    for case in (
        "_vt100=0 nn_init N nn_input IN,2 nn_fc H,IN,8,3,0,1 nn_nl A,H,tanh nn_fc OUT,A,1,3,0.5,0"
        " nn_loss_mse LOSS,OUT,GT nn_print",
        "_vt100=0 nn_init N nn_input IN,2,2,1,3 nn_conv2d C,IN,4,3,1,1,0,1,3,0,0 nn_fc F,C,3,3,0,0"
        " echo ${-nn_size}",
        "_vt100=0 nn_init N nn_input IN,4,4,1,2 nn_maxpool2d M,IN,2,1 nn_avgpool2d V,M nn_patchdown2d P,IN"
        " nn_crop C,P,0,0,0,0,1,1,0,7,1 nn_reshape R,C,2,2,8 nn_distance D,R,C,0 nn_print",
        "_vt100=0 nn_init N nn_input IN,3 nn_input GT,3 nn_loss_normp L,IN,GT,2,0.5"
        " nn_loss_crossentropy C,IN,GT nn_print",
        "_vt100=0 nn_init A nn_input X,2 nn_init B nn_input Y,3 nn_select A nn_print",
        "_vt100=0 nn_init N nn_input IN,2 nn_check_layer IN nn_check_layer X",
        "_vt100=0 nn_init N nn_input IN,2 nn_fc H,IN,0",
        "_vt100=0 nn_init N nn_input IN,2 nn_add A,1,2",
        "_vt100=0 nn_init N nn_input IN,2,2 nn_append A,IN,IN,w",
        "_vt100=0 nn_init N nn_input IN,2,2 nn_conv2d C,IN,2,3,1,1,0,4",
        "_vt100=0 nn_init N nn_input IN,2,2 nn_normalize A,IN,2",
        "_vt100=0 nn_init N nn_input IN,2 nn_fc H,IN,2,3,0,4",
        "_vt100=0 nn_init N nn_input IN,2,2 nn_split A,B,IN,x,1.5",
        "_vt100=0 nn_init N nn_input IN,4 nn_input J,3 nn_sub D,IN,J",
    )
]

# Where nnpipe differs: case -> (why, the lines nnpipe prints, or None when it stops with an
# error). Three kinds: nnpipe's own readings, G'MIC features nnpipe does not have, and
# differences still to fix outside the language (marked PENDING).
SCRIPT_ARGUMENTS = (
    "a script run by nnpipe takes arguments ($1…, $#, ${1=default}); G'MIC's top level has none"
)
PSNR_PRINTS = "nnpipe's psnr also prints `PSNR: x dB` and sets $psnr; G'MIC's prints nothing"
REPEAT_VARIABLE = "`repeat N,var` (var counts 0…N-1) is nnpipe's own; G'MIC 3.6.3 refuses it"
POW = "pow(a,b) is nnpipe's own (G'MIC has no pow(); write a^b)"
SET_VECTOR = (
    "set('v', vector) stores the numbers, comma-separated; G'MIC stores the text whose"
    " character codes they are"
)
TEXTUAL_ARGUMENTS = (
    "an argument holding a blank stays one item where $1 or $* stands;"
    " G'MIC pastes the arguments into the command's text before splitting it"
    " into items, so the blank splits it"
)
UNBALANCED = "an unbalanced { or ${ is an error in nnpipe; G'MIC leaves it as text"
NNPIPE_READINGS = {
    "echo": ("`echo` needs its text in nnpipe; G'MIC prints an empty message", None),
    "x=5 echo ${x=7}": (
        "${name=default} reads a variable with a default (nnpipe's own); G'MIC"
        " runs `x=7` as a command and substitutes its empty status",
        ["5"],
    ),
    "echo ${1=def}": (SCRIPT_ARGUMENTS, ["def"]),
    "echo $#": (SCRIPT_ARGUMENTS, ["0"]),
    "echo {1 + 2}": (
        "blanks inside {…} keep one item (nnpipe's own); G'MIC splits the item at the blank",
        ["3"],
    ),
    "echo {1+2": (UNBALANCED, None),
    "echo ${": (UNBALANCED, None),
    "echo ${x": (UNBALANCED, None),
    "repeat 3,k echo $k done": (REPEAT_VARIABLE, ["0", "1", "2"]),
    "repeat 2,k repeat 2,j echo $k$j done done": (REPEAT_VARIABLE, ["00", "01", "10", "11"]),
    "repeat 3,k done echo [$k]": (REPEAT_VARIABLE, ["[2]"]),
    ("ff : echo $1", 'ff "a b"'): (TEXTUAL_ARGUMENTS, ["a b"]),
    ("star : echo $*", 'star "a b",c'): (TEXTUAL_ARGUMENTS, ["a b,c"]),
    "(1,2,3) resize 2,1,1,1,linear": (
        "resize takes its interpolation's name too (nnpipe's own:"
        " none nearest average linear grid cubic lanczos)",
        [],
    ),
    "(1,2,3;4,5,6) img2patches 2,0,mirror": (
        "a boundary condition may be named (nnpipe's own: dirichlet neumann periodic mirror)",
        [],
    ),
    "(1^2^3^4) channels 1,2,3,4": (
        "nnpipe refuses arguments a command does not take, so a mistyped one shows;"
        " G'MIC's commands written in its own language (channels, img2patches…) ignore them",
        None,
    ),
    "(1,2) print": (
        "print writes one line per image to stdout; G'MIC's print writes its own"
        " report to stderr at a verbosity the gmic module does not show",
        ["[0] (1,2): 2,1,1,1 min=1 max=2 mean=1.5"],
    ),
    "(1,2) (1,3) psnr[0] [1] echo ${}": (PSNR_PRINTS, ["PSNR: 51.14 dB", "51.141103565318915"]),
    "(1,2) (1,3) psnr[0] [1],1 echo ${}": (PSNR_PRINTS, ["PSNR: 3.01 dB", "3.0102999566398121"]),
    "(1,2) (1,2) psnr[0] [1] echo ${}": (PSNR_PRINTS, ["PSNR: inf dB", "inf"]),
    "(1) (2) (3) psnr[0,1] [2] echo ${}": (
        PSNR_PRINTS,
        ["PSNR: 42.11 dB", "PSNR: 48.13 dB", "42.110203695399477,48.130803608679102"],
    ),
    "(1,2) (1,3) psnr[0] [1],10 echo ${}": (PSNR_PRINTS, ["PSNR: 23.01 dB", "23.010299956639813"]),
    "(1,2,3) (4,5,6) psnr[1] [0],0.5 echo ${}": (PSNR_PRINTS, ["PSNR: -15.56 dB", "-15.563025007672874"]),
    "echo {pow(2,10)}": (POW, ["1024"]),
    "echo {pow(2,0.5)}": (POW, ["1.4142135623730951"]),
    "echo {pow(-8,1/3)}": (POW, ["-nan"]),
    "echo {cbrt(27)}": (
        "nnpipe's cbrt is NumPy's correctly rounded cube root (3); G'MIC's is one"
        " unit off in the last digit (3.0000000000000004)",
        ["3"],
    ),
    "echo {(-8)^(1/3)}": (
        "the sign G'MIC prints for a NaN depends on the code path that made it;"
        " nnpipe prints the sign NumPy's power gives",
        ["-nan"],
    ),
    "echo {1?0?5:6:7}": (
        "a ternary nested in the 'then' branch without parentheses: nnpipe reads"
        " 1?(0?5:6):7; G'MIC splits at the first ':'",
        ["6"],
    ),
    "echo {[]}": ("an empty vector [] is an error in nnpipe; G'MIC gives 0", None),
    "(1,2;3,4) eval. \"end(set('v',[w,h]))\" echo $v": (SET_VECTOR, ["2,2"]),
    "(1,2;3,4) eval. \"end(set('v',I(1,1)))\" echo $v": (SET_VECTOR, ["4"]),
}

COMBINE = (
    "add, sub, mul and div without an argument (combining the selected images into one)"
    " are not implemented: nnpipe asks for the value"
)
ORDERED = (
    "'>' and '<' before an expression (pixels read while they are written, in order)"
    " are not supported: the evaluator runs every pixel at once"
)
RAW_RESIZE = "resize's interpolation -1 (reinterpret the values in memory) is not supported"
NOT_SUPPORTED = {
    "(1,2) (3,4) add": (COMBINE, None),
    "(1,2) (3,4) mul": (COMBINE, None),
    "(1,2,3) resize 3,1,1,1,-1": (RAW_RESIZE, None),
    "(1,2,3,4) resize 2,2,1,1,-1": (RAW_RESIZE, None),
    '(1,2) eval "i(0)=7"': ("writing pixels from an expression (i(…)=value) is not supported", None),
    '(1,2) fill ">x+i(x-1)"': (ORDERED, None),
    '(1,2,3) fill "<x+i(x+1)"': (ORDERED, None),
}

EVAL_ONCE = (
    "PENDING (nnpipe/commands/expressions.py): G'MIC's eval without a selection"
    " evaluates once, at pixel (0,0,0,0) of the last image, and its status is the"
    " value; nnpipe's runs at every pixel of every image"
)
ECHO_ESCAPES = (
    "PENDING (nnpipe/commands/control.py): G'MIC's echo turns C escapes (\\n, \\t,"
    " \\b…) into their characters; nnpipe's prints them as written"
)
PENDING = {}

REFUSED_AT_BUILD = (
    "G'MIC 3.6.3 builds the layer and fails when the network is evaluated; nnpipe refuses it"
    " when it is added, in one line saying why"
)
PRINT_36 = [" * Network name: N", "   - Layer: IN (type: input)", "       * Output size: 2,1,1,1"]
NNLIB36_READINGS = {
    Nnlib36("_vt100=0 nn_init N nn_print"): (
        "an empty network has 0 layers (3.6.3 counts -1)",
        [" * Network name: N", "", " * Total: 0 layers, 0 parameters.", ""],
    ),
    Nnlib36("_vt100=0 nn_init N nn_input IN,2 nn_mul M,IN,0.5 nn_print"): (
        "a constant second input reads `(2,1,1,1 and 1)`, as a constant first one does in 3.6.3"
        " (which writes `(2,1,1,11)` for this one)",
        PRINT_36
        + [
            "   - Layer: M (type: mul)",
            "       * Inputs: IN,0.5 (2,1,1,1 and 1)",
            "       * Output size: 2,1,1,1",
            "",
            " * Total: 2 layers, 0 parameters.",
            "",
        ],
    ),
    Nnlib36("_vt100=0 nn_init N nn_input IN,2 nn_fc H,IN,1,3,0,0 (5) name. H nn_print rm"): (
        "an image named like a layer adds no second 'Parameters' line (3.6.3 counts its values)",
        PRINT_36
        + [
            "   - Layer: H (type: fc)",
            "       * Input: IN (2,1,1,1)",
            "       * Parameters: 3",
            "       * Output size: 1,1,1,1",
            "       * Properties: learning_mode=3, weight_decay=0",
            "",
            " * Total: 2 layers, 3 parameters.",
            "",
        ],
    ),
    Nnlib36(
        "_vt100=0 nn_init N nn_input IN,2 nn_fc A,IN,1,3,0,0 nn_loss_mse L1,A,GT nn_loss_mse L2,A,GT2"
        " nn_loss_add L,L1,L2 nn_print rm"
    ): (
        "nn_loss_add adds a loss, the sum of two (3.6.3's check refuses every argument)",
        PRINT_36
        + [
            "   - Layer: A (type: fc)",
            "       * Input: IN (2,1,1,1)",
            "       * Parameters: 3",
            "       * Output size: 1,1,1,1",
            "       * Properties: learning_mode=3, weight_decay=0",
            "   - Layer: L1 (type: loss_mse)",
            "       * Input: A (1,1,1,1)",
            "       * Output size: 1,1,1,1",
            "       * Properties: ground_truth=GT, weight=1",
            "   - Layer: L2 (type: loss_mse)",
            "       * Input: A (1,1,1,1)",
            "       * Output size: 1,1,1,1",
            "       * Properties: ground_truth=GT2, weight=1",
            "   - Layer: L (type: loss_add)",
            "       * Inputs: L1,L2 (1,1,1,1 and 1,1,1,1)",
            "       * Output size: 1,1,1,1",
            "",
            " * Total: 5 layers, 3 parameters.",
            "",
        ],
    ),
    Nnlib36("_vt100=0 nn_init N nn_input IN,5,4 nn_conv2d C,IN,2,3,2 nn_print rm"): (REFUSED_AT_BUILD, None),
    Nnlib36("_vt100=0 nn_init N nn_input IN,4 nn_split A,B,IN,x,4 nn_print"): (REFUSED_AT_BUILD, None),
    Nnlib36("_vt100=0 nn_init N nn_input IN,4 nn_nl A,IN,expr nn_print"): (REFUSED_AT_BUILD, None),
    Nnlib36("_vt100=0 nn_init N nn_input IN,2,2,1,3 nn_patchup2d U,IN nn_print"): (REFUSED_AT_BUILD, None),
    Nnlib36("_vt100=0 nn_init N nn_input IN,4 nn_resize R,IN,8,1,1,1,-1 nn_print"): (
        "nn_resize's interpolation -1 (the values read again under the new size) is refused",
        None,
    ),
    Nnlib36("_vt100=0 (1,2,3) name N_H nn_init N nn_input IN,2 nn_fc H,IN,3 nn_print rm"): (
        "a parameter image given beforehand must have the layer's size; 3.6.3 keeps any image of"
        " that name, whatever its size, and computes with it",
        None,
    ),
    Nnlib36("_vt100=0 nn_select M nn_init N nn_input IN,2 nn_print"): (
        "nn_select names an existing network (3.6.3 selects any name)",
        None,
    ),
}

DELIBERATE = {**NNPIPE_READINGS, **NOT_SUPPORTED, **PENDING, **NNLIB36_READINGS}


# --- running both --------------------------------------------------------------------------------


class Outcome:
    def __init__(self, lines, images, error):
        self.lines, self.images, self.error = lines, images, error


_SHARED_GMIC = []


def _reads_unset_variable(script):
    """Whether `script` reads a variable it does not set, or the status (a shared G'MIC keeps
    the variables and the status earlier runs set)."""
    if "${}" in script:
        return True
    read = set(re.findall(r"\$\{?([A-Za-z_]\w*)", script))
    written = {
        name
        for names in re.findall(r"(?:^|\s)([A-Za-z_][\w,]*)(?:[-+*/%^.:]?=)", script)
        for name in names.split(",")
    }
    written |= set(re.findall(r"set\('(\w+)'", script))
    return bool(read - written)


def _gmic(fresh):
    """One G'MIC interpreter for the cases that can share one (making one takes 70 ms; a run
    starts with no images, but variables stay); a fresh one where a case defines commands, which
    stay too, or reads a variable it does not set."""
    if fresh:
        return gmic.Gmic()
    if not _SHARED_GMIC:
        _SHARED_GMIC.append(gmic.Gmic())
    return _SHARED_GMIC[0]


def run_gmic(case):
    """G'MIC's echo lines (fd 2) and images as (name, (w,h,d,s), values in nnpipe's layout)."""
    definitions, script = case if isinstance(case, tuple) else (None, case)
    with tempfile.TemporaryDirectory() as folder:
        if definitions is not None:
            path = os.path.join(folder, "defs.gmic")
            with open(path, "w") as handle:
                handle.write(definitions + "\n")
            script = f"command {path} {script}"
        names = gmic.StringList()
        saved, capture = os.dup(2), tempfile.TemporaryFile()
        os.dup2(capture.fileno(), 2)
        error, images = None, []
        try:
            fresh = definitions is not None or _reads_unset_variable(script)
            images = _gmic(fresh).run(script, None, names)
        except Exception as exception:  # G'MIC's errors are plain RuntimeErrors
            error = str(exception)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    if error is not None:
        text = "\n".join(line for line in text.split("\n") if "*** Error" not in line)
        return Outcome(_lines(text), [], error)
    listed = [
        (name, (im.width, im.height, im.depth, im.spectrum), _values(im)) for name, im in zip(names, images)
    ]
    return Outcome(_lines(text), listed, None)


def _values(image):
    """A G'MIC image's values in nnpipe's (s,d,h,w) layout (G'MIC's as_numpy is (w,h,d,s))."""
    if image.width * image.height * image.depth * image.spectrum == 0:
        return np.zeros((image.spectrum, image.depth, image.height, image.width), np.float32)
    return np.asarray(image.as_numpy()).transpose(3, 2, 1, 0)


def _lines(text):
    """G'MIC's echo starts each message on a new line and ends none: compare texts with the
    final line break of nnpipe's removed (an empty echo alone prints nothing in G'MIC)."""
    return text.split("\n") if text else []


def run_nnpipe(case):
    definitions, script = case if isinstance(case, tuple) else (None, case)
    text = script if definitions is None else f"{script}\n{definitions}\n"
    try:
        run = run_script(text, api="3.6" if isinstance(case, Nnlib36) else "2023")
    except UserError as error:
        return Outcome([], [], str(error))
    listed = [
        (name, tuple(reversed(image.shape)), np.asarray(image)) for name, image in zip(run.names, run.images)
    ]
    return Outcome(_lines(run.out[:-1] if run.out.endswith("\n") else run.out), listed, None)


def describe(outcome):
    images = [(name, size, np.round(values, 6).ravel().tolist()) for name, size, values in outcome.images]
    return f"lines={outcome.lines} images={images} error={outcome.error}"


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def same_text(expected, got):
    """Printed lines agree: the same text, except that two numbers written alike (the same
    digits count, point and exponent) may differ in their last bits, as two math libraries'
    exp() or acosh() may."""
    if expected == got:
        return True
    if len(expected) != len(got):
        return False
    for want, have in zip(expected, got):
        if NUMBER.split(want) != NUMBER.split(have):
            return False
        for a, b in zip(NUMBER.findall(want), NUMBER.findall(have)):
            alike = len(a) == len(b) and ("." in a) == ("." in b) and ("e" in a.lower()) == ("e" in b.lower())
            if a != b and not (alike and math.isclose(float(a), float(b), rel_tol=1e-15)):
                return False
    return True


def assert_same(case, expected, got):
    message = f"{case!r}\n  G'MIC:  {describe(expected)}\n  nnpipe: {describe(got)}"
    assert (expected.error is None) == (got.error is None), message
    if expected.error is not None:
        return
    assert same_text(expected.lines, got.lines), message
    assert [(n, s) for n, s, _ in expected.images] == [(n, s) for n, s, _ in got.images], message
    for (_, _, want), (_, _, have) in zip(expected.images, got.images):
        assert np.allclose(have, want, rtol=1e-5, atol=1e-6, equal_nan=True), message


def case_id(case):
    text = case if isinstance(case, str) else f"{case[0]} | {case[1]}"
    return text.replace("\n", "\\n")[:80]


def test_gmic_is_the_version_the_cases_were_written_for():
    assert gmic.__version__ == "3.6.3"


def test_layout_of_gmic_images_is_mapped():
    """G'MIC's as_numpy() is (w,h,d,s); nnpipe's images are (s,d,h,w): a 2x3x1x2 image whose
    value says where it is reads the same in both once mapped."""
    expected = run_gmic('2,3,1,2,"x+10*y+100*c"').images[0][2]
    assert expected.shape == (2, 1, 3, 2)
    assert expected[1, 0, 2, 1] == 121 and expected[0, 0, 1, 0] == 10


@pytest.mark.parametrize("case", [c for c in LANGUAGE if c not in DELIBERATE], ids=case_id)
def test_language_as_gmic(case):
    assert_same(case, run_gmic(case), run_nnpipe(case))


@pytest.mark.parametrize("case", [c for c in EXPRESSIONS if c not in DELIBERATE], ids=case_id)
def test_expression_as_gmic(case):
    assert_same(case, run_gmic(case), run_nnpipe(case))


@pytest.mark.parametrize("case", list(DELIBERATE), ids=case_id)
def test_deliberate_difference(case):
    reason, lines = DELIBERATE[case]
    got = run_nnpipe(case)
    if lines is None:
        assert got.error is not None, reason
    else:
        assert got.error is None and got.lines == lines, reason
    with pytest.raises(AssertionError):  # else G'MIC now agrees: the case is no difference
        assert_same(case, run_gmic(case), got)


@pytest.mark.parametrize("case", NNLIB36, ids=case_id)
def test_nnlib36_as_gmic(case):
    assert_same(case, run_gmic(case), run_nnpipe(case))


def test_enough_cases_each_once():
    assert len(LANGUAGE) >= 200 and len(EXPRESSIONS) >= 150
    cases = LANGUAGE + EXPRESSIONS + NNLIB36 + list(NNLIB36_READINGS)
    assert len(set(cases)) == len(cases)
    assert set(DELIBERATE) <= set(cases)


# --- files: PNG written by one, read by the other ------------------------------------------------


def test_png_written_by_gmic_reads_the_same_in_nnpipe(tmp_path):
    """Values and sizes agree. Names differ deliberately: nnpipe names an image read from a
    file by the file's stem (`[t1]` selects t1.png); G'MIC by the path as written."""
    for inline in ("(0,128,255;10,20,30)", "(0,128,255^1,2,3^4,5,6)"):
        path = tmp_path / "t1.png"
        assert run_gmic(f"{inline} output {path}").error is None
        expected, got = run_gmic(f"input {path}"), run_nnpipe(f"input {path}")
        assert [(size, values.tolist()) for _, size, values in got.images] == [
            (size, values.tolist()) for _, size, values in expected.images
        ]
        assert [name for name, _, _ in expected.images] == [str(path)]
        assert [name for name, _, _ in got.images] == ["t1"]


def test_png_written_by_nnpipe_reads_the_same_in_gmic(tmp_path):
    """Integer values in 0..255 come back exactly. Between and beyond them nnpipe deliberately
    rounds and clips to 8 bits (0.6 -> 1, 300 -> 255, -5 -> 0); G'MIC truncates (0.6 -> 0),
    and writes 16 bits when a value exceeds 255 (so -5 wraps to 65531)."""
    path = tmp_path / "n.png"
    assert run_nnpipe(f"(0,1,128,254,255;7,8,9,10,11) output {path}").error is None
    read = run_gmic(f"input {path}").images[0]
    assert read[1] == (5, 2, 1, 1)
    assert read[2].ravel().tolist() == [0, 1, 128, 254, 255, 7, 8, 9, 10, 11]
    assert run_nnpipe(f"(0.6,300,-5) output {path}").error is None
    assert run_gmic(f"input {path}").images[0][2].ravel().tolist() == [1, 255, 0]


@pytest.mark.parametrize("load", ["command {path}", "{path}"])
def test_command_file_loads_as_in_gmic(tmp_path, load):
    """`command file.gmic` and a bare file.gmic item both define the file's commands."""
    path = tmp_path / "commands.gmic"
    path.write_text('greet :\n  echo "hello $1"\nsquare : (1,2) mul $1\n')
    script = load.format(path=path) + " greet world square 3"
    expected = run_gmic(script)
    assert expected.error is None and expected.lines == ["hello world"]
    assert_same(script, expected, run_nnpipe(script))
